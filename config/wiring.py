"""What the shell hands from one app to another at start-up: a lower app never imports a
higher one (``lint-imports``), so what it needs from above is installed here.

- the risk app's gateway, trading state, sizing and post-reconciliation checks into the
  trading app's order path, loop and reconciliation (``trading.ports``);
- the trading app's response to a kill-switch activation (cancel open orders, flatten on
  request) onto the risk app's ``kill_switch_activated`` signal;
- the stuck-jobs check (``config.jobs``) and the reconciliation check into the health
  primitives /healthz runs (``monitoring.health.EXTRA_CHECKS``).
"""

from __future__ import annotations

from config.jobs import check_jobs
from monitoring.health import EXTRA_CHECKS
from risk.port import RiskGateway
from risk.signals import kill_switch_activated
from trading.ports import risk_port_install
from trading.receivers import on_kill_switch_activated


def install() -> None:
    """Called once per process by ``ShellConfig.ready``."""
    risk_port_install(RiskGateway())
    kill_switch_activated.connect(on_kill_switch_activated, dispatch_uid="trading.kill_switch")
    if ("jobs", check_jobs) not in EXTRA_CHECKS:
        EXTRA_CHECKS.append(("jobs", check_jobs))

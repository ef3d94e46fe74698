"""The trading app's answer to a kill-switch activation: cancel, halt, optionally flatten.

Connected by the shell (``config.wiring``). Halting needs no action here: the trading loop and the
risk gateway read the persisted kill-switch state before every strategy tick and order.
"""

from __future__ import annotations

from typing import Any

import structlog

from trading.brokers import broker_for_mode
from trading.services.submit import orders_cancel_open, positions_flatten

log = structlog.get_logger(__name__)


def on_kill_switch_activated(sender: Any, *, state: Any, flatten: bool = False, **_: Any) -> None:
    strategy_id = None if state.scope == "global" else _strategy_id(state)
    reason = f"kill switch: {state.reason}"
    cancelled = orders_cancel_open(
        broker_for=broker_for_mode, strategy_id=strategy_id, reason=reason
    )
    flattened = []
    if flatten:
        flattened = positions_flatten(
            broker_for=broker_for_mode, strategy_id=strategy_id, reason=reason
        )
    log.warning(
        "kill_switch.applied",
        scope=state.scope,
        cancelled=len(cancelled),
        flatten_orders=len(flattened),
    )


def _strategy_id(state: Any) -> int | None:
    strategy_id = getattr(state, "strategy_id", None)
    return int(strategy_id) if strategy_id is not None else None

"""What the trading app asks of the risk app, handed in by the shell at start-up.

The risk app sits above trading: it reads positions, orders and runtimes to judge them. The
order path, the loop and reconciliation still need its answers; ``config.wiring`` installs
``risk.port.RiskGateway`` here, so trading imports nothing of risk (``lint-imports``) and every
order still passes the one gateway (architecture principle 3).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from django.core.exceptions import ImproperlyConfigured

from quant.clock import Clock
from quant.risk.state import TradingState
from quant.risk.values import RiskVerdict

if TYPE_CHECKING:
    from research.models import Strategy
    from trading.models import Order


class RiskPort(Protocol):
    def check_order(self, order: Order, clock: Clock) -> RiskVerdict:
        """The gateway for one PENDING order, inside the transaction that approves it."""
        ...

    def trading_state(self, *, strategy_id: int, mode: str, now: datetime) -> TradingState:
        """May the strategy act in ``mode`` now (mode gate, kill switch, safe mode, pause)?"""
        ...

    def entry_cap(
        self,
        *,
        strategy: Strategy,
        mode: str,
        symbol: str,
        limit_price: Decimal | None,
        fallback_price: Decimal,
        stop_distance: Decimal | None,
        now: datetime,
    ) -> Decimal:
        """The largest entry the order-level limits allow at the limit price, else the last
        price, else ``fallback_price`` (the gateway checks the order again anyway)."""
        ...

    def strategy_equity(
        self, *, strategy: Strategy, mode: str, account_equity: Decimal, now: datetime
    ) -> Decimal:
        """The strategy's equity as its drawdown and daily-loss limits measure it."""
        ...

    def reconciled(self, *, mode: str, now: datetime) -> None:
        """After a reconciliation: the circuit breaker and the portfolio's health."""
        ...


_port: RiskPort | None = None


def risk_port_install(port: RiskPort | None) -> None:
    """Install the risk app's answers (``config.wiring``; a test may install a double)."""
    global _port
    _port = port


def risk() -> RiskPort:
    if _port is None:
        raise ImproperlyConfigured(
            "no risk gateway is installed: add 'config.apps.ShellConfig' to INSTALLED_APPS"
        )
    return _port

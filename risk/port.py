"""The risk app's answers to the trading app (``trading.ports.RiskPort``), installed by the
shell (``config.wiring``): the gateway, the trading state, entry sizing, the strategy equity its
limits measure, and what follows a reconciliation."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from monitoring.services import alert_raise_safely
from quant.clock import Clock
from quant.risk.health import EquityPoint, HealthStatus, check_portfolio_health
from quant.risk.rules import max_quantity
from quant.risk.state import TradingState
from quant.risk.values import RiskVerdict
from research.models import Strategy
from risk import gateway, selectors
from risk.services import circuit_breaker_run
from trading.models import AccountSnapshot, Order


class RiskGateway:
    """``trading.ports.RiskPort`` over the risk app's services."""

    def check_order(self, order: Order, clock: Clock) -> RiskVerdict:
        return gateway.order_risk_check(order, clock)

    def trading_state(self, *, strategy_id: int, mode: str, now: datetime) -> TradingState:
        return gateway.trading_state(strategy_id=strategy_id, mode=mode, now=now)

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
        portfolio = gateway.portfolio_view(mode, symbol, now)
        if portfolio is None:
            return Decimal("0")
        limits, _ = selectors.limits_effective_for(strategy=strategy)
        market = gateway.market_view(symbol, now)
        return max_quantity(
            reference_price=limit_price or market.last_price or fallback_price,
            stop_distance=stop_distance,
            portfolio=portfolio,
            market=market,
            limits=limits,
        )

    def strategy_equity(
        self, *, strategy: Strategy, mode: str, account_equity: Decimal, now: datetime
    ) -> Decimal:
        limits = selectors.strategy_limits_for(strategy=strategy)
        view = gateway.strategy_view(
            strategy.pk, mode, account_equity, limits.max_allocation_pct, now
        )
        return view.equity

    def reconciled(self, *, mode: str, now: datetime) -> None:
        circuit_breaker_check(mode=mode)
        portfolio_health_check(mode=mode, now=now)


def circuit_breaker_check(*, mode: str) -> str | None:
    """Spec: total drawdown above its limit activates the kill switch (daily drawdown halts
    entries in the gateway itself). Runs on the account snapshots; returns the reason."""
    points = [
        EquityPoint(ts, equity)
        for ts, equity in AccountSnapshot.objects.filter(mode=mode)
        .order_by("ts")
        .values_list("ts", "equity")
    ]
    reading = circuit_breaker_run(equity_points=points)
    return reading.reason if reading.kill else None


def portfolio_health_check(*, mode: str, now: datetime) -> str:
    """Spec's post-trade monitoring: HEALTHY / WARNING / CRITICAL after each reconciliation;
    anything but HEALTHY raises an alert of that severity (grouped while it lasts)."""
    portfolio = gateway.portfolio_view(mode, "", now)
    if portfolio is None:
        return HealthStatus.HEALTHY.value
    report = check_portfolio_health(portfolio, selectors.limits_current())
    if report.status is not HealthStatus.HEALTHY:
        alert_raise_safely(
            severity=report.status.value,
            source="risk.portfolio_health",
            message=f"Portfolio health ({mode}) {report.status.value.upper()}: "
            + "; ".join(report.reasons),
            key=f"risk.portfolio_health.{mode}.{report.status.value}",
        )
    return report.status.value

"""Post-trade monitoring as pure functions (spec section 6), free of Django.

``check_portfolio_health`` grades the portfolio against the portfolio-level limits: CRITICAL
when one is breached (above it; equal is still within), WARNING at 75% of one or more, HEALTHY
otherwise. ``CircuitBreaker`` reads an equity curve: a daily drawdown above its limit halts new
entries, a total drawdown above its limit asks for the kill switch. The breaker only answers;
``risk.services.circuit_breaker_run`` acts on the answer.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from quant.risk.limits import HUNDRED, RiskLimits
from quant.risk.values import ZERO, PortfolioView, money, pct, pct_over, ratio_pct, shown

WARNING_FRACTION = Decimal("0.75")


class HealthStatus(enum.StrEnum):
    HEALTHY = "healthy"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class HealthReport:
    status: HealthStatus
    reasons: tuple[str, ...]
    metrics: dict[str, Decimal] = field(default_factory=dict)


def _drawdown_pct(peak: Decimal, now: Decimal) -> Decimal:
    return ratio_pct(max(peak - now, ZERO), peak) if peak > 0 else ZERO


def _show(value: Decimal, is_pct: bool, limit: Decimal | None = None) -> str:
    if not is_pct:
        return str(int(value))
    return pct(shown(value, limit) if limit is not None else value)


def check_portfolio_health(portfolio: PortfolioView, limits: RiskLimits) -> HealthReport:
    """HEALTHY, WARNING (>= 75% of a limit) or CRITICAL (a limit breached), with the reasons."""
    if portfolio.equity <= 0:
        reason = f"Equity is not positive: {money(portfolio.equity)}"
        return HealthReport(HealthStatus.CRITICAL, (reason,), {"equity": portfolio.equity})
    measures: list[tuple[str, str, Decimal, Decimal, bool]] = [
        (
            "daily_drawdown_pct",
            "Daily drawdown",
            _drawdown_pct(portfolio.opening_equity, portfolio.equity),
            limits.max_daily_drawdown_pct,
            True,
        ),
        (
            "total_drawdown_pct",
            "Total drawdown",
            _drawdown_pct(portfolio.high_water_mark, portfolio.equity),
            limits.max_total_drawdown_pct,
            True,
        ),
        (
            "capital_deployed_pct",
            "Capital deployed",
            ratio_pct(portfolio.deployed, portfolio.equity),
            limits.max_capital_deployed_pct,
            True,
        ),
        (
            "open_positions",
            "Open positions",
            Decimal(portfolio.open_positions),
            Decimal(limits.max_open_positions),
            False,
        ),
    ]
    critical: list[str] = []
    warning: list[str] = []
    metrics: dict[str, Decimal] = {}
    for key, label, value, limit, is_pct in measures:
        metrics[key] = value
        cap = _show(limit, is_pct)
        if value > limit:
            critical.append(f"{label} {_show(value, is_pct, limit)} > limit {cap}")
        elif value >= limit * WARNING_FRACTION:
            share = (value * HUNDRED / limit).quantize(Decimal(1))
            warning.append(f"{label} {_show(value, is_pct)} is at {share}% of its limit {cap}")
    if critical:
        return HealthReport(HealthStatus.CRITICAL, tuple(critical + warning), metrics)
    if warning:
        return HealthReport(HealthStatus.WARNING, tuple(warning), metrics)
    return HealthReport(HealthStatus.HEALTHY, (), metrics)


# --- circuit breaker ------------------------------------------------------------------------


class CircuitState(enum.StrEnum):
    ACTIVE = "active"  # tripped: new entries are halted (and maybe the kill switch is asked for)
    INACTIVE = "inactive"


@dataclass(frozen=True)
class EquityPoint:
    ts: datetime
    equity: Decimal


@dataclass(frozen=True)
class DrawdownReading:
    state: CircuitState
    equity: Decimal
    opening_equity: Decimal
    high_water_mark: Decimal
    daily_drawdown_pct: Decimal
    total_drawdown_pct: Decimal
    halt_entries: bool  # daily drawdown above its limit
    kill: bool  # total drawdown above its limit
    reason: str


@dataclass(frozen=True)
class KillSwitchTrigger:
    """The kill-switch activation the breaker asks for; the service performs it."""

    reason: str
    scope: str = "global"
    flatten: bool = False
    source: str = "auto"
    details: dict[str, str] = field(default_factory=dict)


def drawdown_reading(
    points: Sequence[EquityPoint], limits: RiskLimits, *, opening_equity: Decimal | None = None
) -> DrawdownReading:
    """The drawdowns at the curve's last point.

    The high water mark is the curve's maximum; the opening equity is the first point of the
    last point's calendar day (in the timestamps' own timezone: pass exchange-local times), or
    ``opening_equity`` when given.
    """
    if not points:
        return DrawdownReading(
            CircuitState.INACTIVE, ZERO, ZERO, ZERO, ZERO, ZERO, False, False, "no equity yet"
        )
    last = points[-1]
    hwm = max(p.equity for p in points)
    if opening_equity is None:
        opening_equity = next(p.equity for p in points if p.ts.date() == last.ts.date())
    daily = _drawdown_pct(opening_equity, last.equity)
    total = _drawdown_pct(hwm, last.equity)
    daily_limit, total_limit = limits.max_daily_drawdown_pct, limits.max_total_drawdown_pct
    halt = opening_equity > 0 and max(opening_equity - last.equity, ZERO) * HUNDRED > (
        opening_equity * daily_limit
    )
    kill = hwm > 0 and max(hwm - last.equity, ZERO) * HUNDRED > hwm * total_limit
    reasons = []
    if kill:
        reasons.append(
            f"Total drawdown {pct_over(total, total_limit)} from high water mark "
            f"{money(hwm)} (kill switch)"
        )
    if halt:
        reasons.append(f"Daily drawdown {pct_over(daily, daily_limit)} (new entries halted)")
    state = CircuitState.ACTIVE if halt or kill else CircuitState.INACTIVE
    return DrawdownReading(
        state, last.equity, opening_equity, hwm, daily, total, halt, kill, "; ".join(reasons)
    )


class CircuitBreaker:
    """Spec interface: ``check_drawdown`` then ``trigger_if_threshold_breached``."""

    def __init__(self, limits: RiskLimits) -> None:
        self.limits = limits
        self.reading: DrawdownReading | None = None

    def check_drawdown(
        self, equity_points: Sequence[EquityPoint], *, opening_equity: Decimal | None = None
    ) -> CircuitState:
        self.reading = drawdown_reading(equity_points, self.limits, opening_equity=opening_equity)
        return self.reading.state

    def trigger_if_threshold_breached(self) -> KillSwitchTrigger | None:
        """The kill-switch activation to raise after the last check, if total drawdown asks."""
        reading = self.reading
        if reading is None or not reading.kill:
            return None
        return KillSwitchTrigger(
            reason=reading.reason,
            details={
                "total_drawdown_pct": str(reading.total_drawdown_pct),
                "daily_drawdown_pct": str(reading.daily_drawdown_pct),
                "high_water_mark": str(reading.high_water_mark),
                "equity": str(reading.equity),
            },
        )

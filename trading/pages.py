"""Reads of the dashboard's trading parts, over the API's selectors and metrics: open
positions valued at the last price, orders, account equity over time."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import Sum

from quant.risk.state import MODES_ALLOWED
from research.models import Strategy
from trading import selectors
from trading.metrics import metrics_summary
from trading.models import AccountSnapshot, Order, Position, SafeMode, TradingMode
from trading.selectors import PositionValue

ZERO = Decimal(0)


def open_positions(
    *, mode: str | None = None, strategy: Strategy | None = None
) -> list[PositionValue]:
    """Every non-flat position, with the newest close of its symbol (None when no bar): the
    API's selectors, in the dashboard's order."""
    positions = selectors.positions_list(
        mode=mode, strategy_id=strategy.pk if strategy is not None else None
    ).order_by("mode", "strategy__name", "symbol")
    return selectors.positions_valued(positions)


def orders_recent(*, limit: int = 20, strategy: Strategy | None = None) -> list[Order]:
    return list(
        selectors.orders_list(strategy_id=strategy.pk if strategy is not None else None)[:limit]
    )


def equity_summary(*, mode: str) -> dict[str, Any]:
    """``GET /v1/metrics/summary`` over all time (daily closes); while there are fewer than
    two days, over the last week by the hour, then the last day by the minute."""
    for period in ("all", "1w", "1d"):
        summary = metrics_summary(period=period, mode=mode)
        if len(summary["equity_curve"]) >= 2:
            break
    return summary


def book_summary(*, mode: str) -> dict[str, Any]:
    """Equity, P&L and drawdown of one trading mode, all Decimal."""
    rows = open_positions(mode=mode)
    realized = (
        Position.objects.filter(mode=mode).aggregate(total=Sum("realized_pnl"))["total"] or ZERO
    )
    unrealized = sum((r.unrealized_pnl for r in rows if r.unrealized_pnl is not None), ZERO)
    unpriced = [r.position.symbol for r in rows if r.last_price is None]
    summary = equity_summary(mode=mode)
    curve, drawdowns = summary["equity_curve"], summary["drawdown_curve"]
    latest = AccountSnapshot.objects.filter(mode=mode).order_by("-ts").first()
    safe_mode = SafeMode.objects.filter(mode=mode, active=True).first()
    return {
        "mode": mode,
        "mode_label": TradingMode(mode).label,
        "account": latest,
        "realized_pnl": realized,
        "unrealized_pnl": unrealized,
        "total_pnl": realized + unrealized,
        "unpriced": unpriced,
        "open_count": len(rows),
        "exposure": sum((abs(r.market_value) for r in rows if r.market_value is not None), ZERO),
        "drawdown_pct": drawdowns[-1][1] if drawdowns else None,
        "max_drawdown_pct": -summary["max_drawdown_pct"] if curve else None,
        "safe_mode": safe_mode,
        "equity_points": len(curve),
        "equity_bucket": {"1Min": "minutes", "1Hour": "hours"}.get(summary["bucket"], "days"),
        "sharpe": summary["sharpe"],
        "win_rate": summary["win_rate"],
    }


def modes_in_use() -> list[str]:
    """The trading modes with an account snapshot or a position; paper when there is none."""
    used = set(AccountSnapshot.objects.values_list("mode", flat=True).distinct())
    used |= set(Position.objects.values_list("mode", flat=True).distinct())
    return [m for m in TradingMode.values if m in used] or [TradingMode.PAPER.value]


def manual_order_choices() -> dict[str, Any]:
    """The strategies the manual order form offers: those the mode gate lets trade."""
    tradable = [mode for mode, allowed in MODES_ALLOWED.items() if allowed]
    return {
        "order_strategies": list(
            Strategy.objects.filter(is_active=True, mode__in=tradable)
            .order_by("name")
            .values("pk", "name", "mode", "symbols")
        ),
    }

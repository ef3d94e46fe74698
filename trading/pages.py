"""Reads of the dashboard's trading parts: open positions valued at the last price, orders,
account equity over time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Sum

from quant.models import Strategy
from risk.reads import last_prices
from trading.models import AccountSnapshot, Order, Position, SafeMode, TradingMode

ZERO = Decimal(0)
EQUITY_POINTS = 5000


@dataclass(frozen=True)
class PositionRow:
    position: Position
    last_price: Decimal | None

    @property
    def market_value(self) -> Decimal | None:
        return None if self.last_price is None else self.position.quantity * self.last_price

    @property
    def unrealized_pnl(self) -> Decimal | None:
        if self.last_price is None:
            return None
        return (self.last_price - self.position.avg_price) * self.position.quantity

    @property
    def side(self) -> str:
        return "long" if self.position.quantity > 0 else "short"


def open_positions(
    *, mode: str | None = None, strategy: Strategy | None = None
) -> list[PositionRow]:
    """Every non-flat position, with the newest close of its symbol (None when no bar)."""
    qs = (
        Position.objects.exclude(quantity=0)
        .select_related("strategy")
        .order_by("mode", "strategy__name", "symbol")
    )
    if mode:
        qs = qs.filter(mode=mode)
    if strategy is not None:
        qs = qs.filter(strategy=strategy)
    positions = list(qs)
    prices = last_prices(p.symbol for p in positions)
    return [PositionRow(p, prices.get(p.symbol)) for p in positions]


def orders_recent(*, limit: int = 20, strategy: Strategy | None = None) -> list[Order]:
    qs = Order.objects.select_related("strategy").order_by("-created_at", "-id")
    if strategy is not None:
        qs = qs.filter(strategy=strategy)
    return list(qs[:limit])


def equity_series(*, mode: str) -> tuple[list[datetime], list[Decimal]]:
    """The account's equity snapshots of ``mode``, oldest first (the newest ``EQUITY_POINTS``)."""
    rows = list(
        AccountSnapshot.objects.filter(mode=mode)
        .order_by("-ts")
        .values_list("ts", "equity")[:EQUITY_POINTS]
    )
    rows.reverse()
    return [ts for ts, _ in rows], [equity for _, equity in rows]


def book_summary(*, mode: str) -> dict[str, Any]:
    """Equity, P&L and drawdown of one trading mode, all Decimal."""
    rows = open_positions(mode=mode)
    realized = (
        Position.objects.filter(mode=mode).aggregate(total=Sum("realized_pnl"))["total"] or ZERO
    )
    unrealized = sum((r.unrealized_pnl for r in rows if r.unrealized_pnl is not None), ZERO)
    unpriced = [r.position.symbol for r in rows if r.last_price is None]
    _, equity = equity_series(mode=mode)
    latest = AccountSnapshot.objects.filter(mode=mode).order_by("-ts").first()
    peak = max(equity) if equity else None
    drawdown = max_drawdown = None
    if equity and peak and peak > 0:
        drawdown = (equity[-1] / peak - 1) * 100
        running, worst = equity[0], ZERO
        for value in equity:
            running = max(running, value)
            if running > 0:
                worst = min(worst, (value / running - 1) * 100)
        max_drawdown = worst
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
        "drawdown_pct": drawdown,
        "max_drawdown_pct": max_drawdown,
        "safe_mode": safe_mode,
        "equity_points": len(equity),
    }


def modes_in_use() -> list[str]:
    """The trading modes with an account snapshot or a position; paper when there is none."""
    used = set(AccountSnapshot.objects.values_list("mode", flat=True).distinct())
    used |= set(Position.objects.values_list("mode", flat=True).distinct())
    return [m for m in TradingMode.values if m in used] or [TradingMode.PAPER.value]

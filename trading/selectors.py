"""Reads of the trading app for the API and the dashboard: positions and orders."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Q, QuerySet

from marketdata.prices import last_prices
from quant.errors import NotFoundError
from trading.models import Fill, Order, Position


def positions_list(
    *,
    strategy_id: int | None = None,
    symbol: str | None = None,
    mode: str | None = None,
    include_flat: bool = False,
) -> QuerySet[Position]:
    """Open positions (non-zero quantity) by strategy and symbol, their strategy joined."""
    queryset = Position.objects.select_related("strategy").order_by(
        "strategy__name", "symbol", "id"
    )
    if not include_flat:
        queryset = queryset.exclude(quantity=0)
    if strategy_id is not None:
        queryset = queryset.filter(strategy_id=strategy_id)
    if symbol:
        queryset = queryset.filter(symbol=symbol.strip().upper())
    if mode:
        queryset = queryset.filter(mode=mode)
    return queryset


def position_get(*, position_id: int) -> Position:
    position = positions_list(include_flat=True).filter(pk=position_id).first()
    if position is None:
        raise NotFoundError(f"no position with id {position_id}", details={"id": position_id})
    return position


@dataclass(frozen=True)
class PositionValue:
    """A position with its newest close: market value and unrealized P&L (None: no price)."""

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


def positions_valued(positions: Iterable[Position]) -> list[PositionValue]:
    """The positions with their newest closes, read in one statement for all symbols."""

    rows = list(positions)
    prices = last_prices(p.symbol for p in rows)
    return [PositionValue(p, prices.get(p.symbol)) for p in rows]


def position_orders(*, position: Position, limit: int = 100) -> list[Order]:
    """The orders that built the position (those with fills), newest first."""
    return list(
        Order.objects.filter(
            strategy_id=position.strategy_id, mode=position.mode, symbol=position.symbol
        )
        .filter(filled_quantity__gt=0)
        .select_related("strategy")
        .order_by("-created_at", "-id")[:limit]
    )


def orders_list(
    *,
    strategy_id: int | None = None,
    status: str | None = None,
    mode: str | None = None,
    symbol: str | None = None,
    from_date: datetime | None = None,
    to_date: datetime | None = None,
) -> QuerySet[Order]:
    """Orders, newest first, their strategy joined; ``to_date`` is exclusive."""
    queryset = Order.objects.select_related("strategy").order_by("-created_at", "-id")
    query = Q()
    if strategy_id is not None:
        query &= Q(strategy_id=strategy_id)
    if status:
        query &= Q(status=status)
    if mode:
        query &= Q(mode=mode)
    if symbol:
        query &= Q(symbol=symbol.strip().upper())
    if from_date is not None:
        query &= Q(created_at__gte=from_date)
    if to_date is not None:
        query &= Q(created_at__lt=to_date)
    return queryset.filter(query)


def order_get(*, order_id: int) -> Order:
    order = orders_list().filter(pk=order_id).first()
    if order is None:
        raise NotFoundError(f"no order with id {order_id}", details={"id": order_id})
    return order


def order_fills(*, order: Order) -> list[Fill]:
    return list(Fill.objects.filter(order=order).order_by("ts", "id"))

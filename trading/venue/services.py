"""The simulated venue: placing, cancelling and reading orders, positions and the account.

Synchronous ORM code (``SimulatedBroker`` runs it in a thread for its async interface). Every
entry point locks the account row (``select_for_update``) and first *advances* the venue to the
clock's now: orders whose latency has elapsed are accepted, and every open order is worked
against the bars that finished since it was last worked (``matching.work_order``, the backtest
fill model). The lock makes that safe across processes: web, worker and beat never work the
same bar twice. Asking twice at the same now changes nothing the second time.

Refusals (``FinalBrokerError``, ``OrderNotFoundError``) are raised after the transaction
commits, so the advance they followed is kept.

Orders are good till filled or cancelled, as in a backtest: ``time_in_force`` ("day" or
"gtc") is stored, but a day order does not expire at the close (``expired`` is never set).
Buying power is checked when an order is placed; an accepted order then fills in full even if
the price moved against it (cash may go below zero after a gap, as on a margin account).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import structlog
from django.db import transaction
from django.db.models import QuerySet

from quant.backtest.config import BacktestConfig
from quant.backtest.results import price as engine_price
from quant.clock import Clock
from quant.orders.positions import PRICE_PLACES, PositionBook
from quant.strategies.base import OrderType, Side
from trading.brokers.base import FinalBrokerError, OrderNotFoundError, OrderTicket
from trading.venue.matching import Execution, OrderToWork, buy_price_estimate, work_order
from trading.venue.models import (
    OPEN_VENUE_STATUSES,
    VenueAccount,
    VenueFill,
    VenueOrder,
    VenueOrderStatus,
    VenuePosition,
)
from trading.venue.prices import PriceSource

log = structlog.get_logger(__name__)

ZERO = Decimal("0")
TIME_IN_FORCE = ("day", "gtc")


@dataclass(frozen=True)
class Venue:
    """One simulated venue: the account it books to, its fill model, latency, clock and prices."""

    account: str
    config: BacktestConfig
    latency: timedelta
    clock: Clock
    prices: PriceSource
    starting_cash: Decimal
    order_types: frozenset[str] = frozenset({"market", "limit", "stop"})


@dataclass(frozen=True)
class PositionView:
    symbol: str
    quantity: Decimal
    avg_price: Decimal
    mark: Decimal | None  # the latest finished bar's close


@dataclass(frozen=True)
class AccountView:
    name: str
    cash: Decimal
    equity: Decimal
    buying_power: Decimal


# --- entry points -------------------------------------------------------------------------


def venue_order_place(*, venue: Venue, ticket: OrderTicket) -> VenueOrder:
    """Accept a new order, or refuse it like a broker (``FinalBrokerError``): bad ticket,
    duplicate ``client_order_id``, unknown symbol, insufficient buying power."""
    refusal = _ticket_problem(ticket, venue.order_types)
    if refusal:
        raise FinalBrokerError(refusal, details={"client_order_id": ticket.client_order_id})
    order = None
    with transaction.atomic():
        account = _locked_account(venue)
        _advance(venue, account)
        refusal = _placement_problem(venue, account, ticket)
        if not refusal:
            order = _create(venue, account, ticket)
    if order is None:
        log.info("venue.order_refused", client_order_id=ticket.client_order_id, reason=refusal)
        raise FinalBrokerError(refusal, details={"client_order_id": ticket.client_order_id})
    return order


def venue_order_cancel(*, venue: Venue, broker_order_id: str) -> bool:
    """True if the open order is now cancelled (its filled part stays), False if it was done."""
    with transaction.atomic():
        account = _locked_account(venue)
        _advance(venue, account)
        order = account.orders.filter(broker_order_id=broker_order_id).first()
        cancelled = order is not None and order.is_open
        if order is not None and cancelled:
            order.status = VenueOrderStatus.CANCELLED
            order.updated_at = max(venue.clock.now(), order.updated_at)
            order.save(update_fields=["status", "updated_at"])
    if order is None:
        raise OrderNotFoundError(f"the simulated venue has no order {broker_order_id}")
    return cancelled


def venue_order_get(*, venue: Venue, broker_order_id: str) -> VenueOrder:
    with transaction.atomic():
        account = _locked_account(venue)
        _advance(venue, account)
        order = account.orders.filter(broker_order_id=broker_order_id).first()
    if order is None:
        raise OrderNotFoundError(f"the simulated venue has no order {broker_order_id}")
    return order


def venue_order_by_client_id(*, venue: Venue, client_order_id: str) -> VenueOrder | None:
    with transaction.atomic():
        account = _locked_account(venue)
        _advance(venue, account)
        return account.orders.filter(client_order_id=client_order_id).first()


def venue_open_orders(*, venue: Venue) -> list[VenueOrder]:
    with transaction.atomic():
        account = _locked_account(venue)
        _advance(venue, account)
        return list(_open(account))


def venue_positions(*, venue: Venue) -> list[PositionView]:
    with transaction.atomic():
        account = _locked_account(venue)
        _advance(venue, account)
        return _position_views(venue, account.positions.order_by("symbol"))


def venue_account(*, venue: Venue) -> AccountView:
    """Cash, equity (cash + signed quantity x latest close) and buying power (cash not yet
    committed to open buy orders)."""
    with transaction.atomic():
        account = _locked_account(venue)
        _advance(venue, account)
        positions = _position_views(venue, account.positions.all())
        equity = account.cash + sum(
            (p.quantity * (p.mark if p.mark is not None else p.avg_price) for p in positions), ZERO
        )
        return AccountView(account.name, account.cash, equity, _buying_power(venue, account))


# --- placing ------------------------------------------------------------------------------


def _ticket_problem(ticket: OrderTicket, order_types: frozenset[str]) -> str:
    """What is wrong with the ticket itself ('' when nothing), before the venue is asked."""
    if not ticket.client_order_id or len(ticket.client_order_id) > 128:
        return "client_order_id must be 1 to 128 characters"
    if not ticket.symbol:
        return "symbol is required"
    if ticket.side not in ("buy", "sell"):
        return f"side must be buy or sell, got {ticket.side!r}"
    if ticket.order_type not in order_types:
        return f"order type {ticket.order_type!r} is not supported: use {', '.join(sorted(order_types))}"
    if ticket.time_in_force not in TIME_IN_FORCE:
        return f"time_in_force must be day or gtc, got {ticket.time_in_force!r}"
    quantity = ticket.quantity
    if not quantity.is_finite() or quantity <= 0:
        return f"quantity must be positive, got {quantity}"
    if quantity != quantity.to_integral_value():
        return f"fractional quantities are not supported, got {quantity}"
    for kind, value in (("limit", ticket.limit_price), ("stop", ticket.stop_price)):
        if ticket.order_type == kind and (value is None or not value.is_finite() or value <= 0):
            return f"a {kind} order needs a positive {kind}_price"
    return ""


def _placement_problem(venue: Venue, account: VenueAccount, ticket: OrderTicket) -> str:
    """What the venue's book says against the ticket ('' when it is accepted)."""
    if account.orders.filter(client_order_id=ticket.client_order_id).exists():
        return f"duplicate client_order_id {ticket.client_order_id!r}: the venue already has it"
    latest = venue.prices.latest_bar(ticket.symbol)
    if latest is None:
        return f"unknown symbol {ticket.symbol!r}: the simulated venue has no finished bars of it"
    if ticket.side != "buy":
        return ""  # short selling is allowed
    estimate = buy_price_estimate(
        order_type=OrderType(ticket.order_type),
        last_close=engine_price(latest.close),
        config=venue.config,
        limit=ticket.limit_price,
        stop=ticket.stop_price,
    )
    needed = ticket.quantity * estimate + venue.config.commission_per_trade
    available = _buying_power(venue, account)
    if needed > available:
        return (
            f"insufficient buying power: {ticket.quantity} {ticket.symbol} needs about "
            f"{needed.quantize(Decimal('0.01'))}, {available.quantize(Decimal('0.01'))} available"
        )
    return ""


def _create(venue: Venue, account: VenueAccount, ticket: OrderTicket) -> VenueOrder:
    now = venue.clock.now()
    order = VenueOrder.objects.create(
        account=account,
        client_order_id=ticket.client_order_id,
        symbol=ticket.symbol,
        side=ticket.side,
        order_type=ticket.order_type,
        time_in_force=ticket.time_in_force,
        quantity=ticket.quantity,
        limit_price=ticket.limit_price if ticket.order_type == "limit" else None,
        stop_price=ticket.stop_price if ticket.order_type == "stop" else None,
        created_at=now,
        updated_at=now,
        accept_at=now + venue.latency,
    )
    log.info(
        "venue.order_placed",
        client_order_id=order.client_order_id,
        broker_order_id=order.broker_order_id,
        symbol=order.symbol,
    )
    if order.accept_at <= now:
        book = _Book(account)
        _work(venue, book, order)
        book.save()
    return order


# --- advancing ----------------------------------------------------------------------------


def _locked_account(venue: Venue) -> VenueAccount:
    """The account row, locked until the transaction ends (created on first use)."""
    try:
        return VenueAccount.objects.select_for_update().get(name=venue.account)
    except VenueAccount.DoesNotExist:
        VenueAccount.objects.get_or_create(
            name=venue.account,
            defaults={
                "cash": venue.starting_cash,
                "starting_cash": venue.starting_cash,
                "created_at": venue.clock.now(),
            },
        )
        return VenueAccount.objects.select_for_update().get(name=venue.account)


def _open(account: VenueAccount) -> QuerySet[VenueOrder]:
    return account.orders.filter(status__in=OPEN_VENUE_STATUSES).order_by("created_at", "id")


def _advance(venue: Venue, account: VenueAccount) -> None:
    """Accept and work every open order up to now (the caller holds the account lock)."""
    orders = list(_open(account).filter(accept_at__lte=venue.clock.now()))
    if not orders:
        return
    book = _Book(account)
    for order in orders:
        _work(venue, book, order)
    book.save()


def _work(venue: Venue, book: _Book, order: VenueOrder) -> None:
    """Work one order against the bars it has not seen yet; store its progress."""
    placed = None
    since = order.worked_bar_ts
    if since is None:  # accepting it: it is placed after the latest bar finished by then
        placed = venue.prices.latest_bar(order.symbol, at=order.accept_at)
        if placed is None:  # its bars were deleted between placement and acceptance
            _reject(order, f"no finished bar of {order.symbol} when the order arrived")
            return
        since = order.placed_bar_ts = placed.ts
    bars = venue.prices.bars_after(order.symbol, since)
    if placed is None and not bars:
        return
    result = work_order(_to_work(order), config=venue.config, bars=bars, placed_on=placed)
    order.worked_bar_ts = bars[-1].ts if bars else since
    order.triggered = result.triggered
    if result.executions:
        _record(book, order, result.executions)
    elif result.rejected and result.done:
        _reject(order, result.rejected)
        return
    order.save(
        update_fields=[
            "placed_bar_ts",
            "worked_bar_ts",
            "triggered",
            "filled_qty",
            "filled_avg_price",
            "commission",
            "status",
            "updated_at",
        ]
    )


def _record(book: _Book, order: VenueOrder, executions: Iterable[Execution]) -> None:
    """Add fills to the order's cumulative figures and to the account's cash and position."""
    filled = order.filled_qty
    value = _filled_value(order)
    for execution in executions:
        # Venue time of the fill: its bar, never before the order arrived or its last change.
        ts = max(execution.bar_ts, order.accept_at, order.updated_at)
        filled += execution.quantity
        value += execution.quantity * execution.price
        order.commission += execution.commission
        order.updated_at = ts
        book.apply(order, execution, ts)
    order.filled_qty = filled
    order.filled_avg_price = (value / filled).quantize(PRICE_PLACES)
    order.status = (
        VenueOrderStatus.FILLED if filled >= order.quantity else VenueOrderStatus.PARTIALLY_FILLED
    )


def _filled_value(order: VenueOrder) -> Decimal:
    """Sum of quantity x price of the order's stored fills (exact, unlike avg x quantity)."""
    if not order.filled_qty:
        return ZERO
    return sum((f.quantity * f.price for f in order.fills.all()), ZERO)


def _reject(order: VenueOrder, reason: str) -> None:
    order.status = VenueOrderStatus.REJECTED
    order.reject_reason = reason
    order.updated_at = max(order.accept_at, order.updated_at)
    order.save(update_fields=["status", "reject_reason", "updated_at"])
    log.warning("venue.order_rejected", client_order_id=order.client_order_id, reason=reason)


def _to_work(order: VenueOrder) -> OrderToWork:
    return OrderToWork(
        symbol=order.symbol,
        side=Side(order.side),
        order_type=OrderType(order.order_type),
        quantity=order.quantity,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        filled=order.filled_qty,
        triggered=order.triggered,
    )


class _Book:
    """Cash, positions and fills changed during one advance, written once at its end."""

    def __init__(self, account: VenueAccount) -> None:
        self.account = account
        self.fills: list[VenueFill] = []
        self._positions: dict[str, VenuePosition] | None = None
        self._changed: set[str] = set()

    def apply(self, order: VenueOrder, execution: Execution, ts: datetime) -> None:
        quantity, price = execution.quantity, execution.price
        signed = quantity if order.side == "buy" else -quantity
        self.account.cash -= signed * price + execution.commission
        positions = self.positions()
        position = positions.get(order.symbol)
        if position is None:
            position = VenuePosition(
                account=self.account, symbol=order.symbol, quantity=ZERO, avg_price=ZERO
            )
            positions[order.symbol] = position
        after = PositionBook(position.quantity, position.avg_price).apply(
            side=order.side, quantity=quantity, price=price
        )
        position.quantity, position.avg_price, position.updated_at = (
            after.quantity,
            after.avg_price,
            ts,
        )
        self._changed.add(order.symbol)
        self.fills.append(
            VenueFill(
                order=order, quantity=quantity, price=price, commission=execution.commission, ts=ts
            )
        )
        log.info(
            "venue.fill",
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            quantity=str(quantity),
            price=str(price),
        )

    def positions(self) -> dict[str, VenuePosition]:
        if self._positions is None:
            self._positions = {p.symbol: p for p in self.account.positions.all()}
        return self._positions

    def save(self) -> None:
        if not self.fills:
            return
        VenueFill.objects.bulk_create(self.fills)
        self.account.save(update_fields=["cash"])
        positions = self.positions()
        for symbol in sorted(self._changed):
            position = positions[symbol]
            if position.quantity == 0:
                if position.pk is not None:
                    position.delete()
                del positions[symbol]
            else:
                position.save()


# --- reading ------------------------------------------------------------------------------


def _position_views(venue: Venue, positions: Iterable[VenuePosition]) -> list[PositionView]:
    views = []
    for position in positions:
        latest = venue.prices.latest_bar(position.symbol)
        mark = engine_price(latest.close) if latest is not None else None
        views.append(PositionView(position.symbol, position.quantity, position.avg_price, mark))
    return views


def _buying_power(venue: Venue, account: VenueAccount) -> Decimal:
    """Cash less what the open buy orders are expected to cost."""
    reserved = ZERO
    closes: dict[str, Decimal] = {}
    for order in _open(account).filter(side="buy"):
        if order.symbol not in closes:
            latest = venue.prices.latest_bar(order.symbol)
            closes[order.symbol] = engine_price(latest.close) if latest else ZERO
        estimate = buy_price_estimate(
            order_type=OrderType(order.order_type),
            last_close=closes[order.symbol],
            config=venue.config,
            limit=order.limit_price,
            stop=order.stop_price,
        )
        reserved += (order.quantity - order.filled_qty) * estimate
        reserved += venue.config.commission_per_trade
    return account.cash - reserved

"""The order path: create → risk gateway → broker → broker reports → fills and positions.

Rules (architecture principles 3, 4 and 6):
- Every status change is ``_transition``: a compare-and-swap UPDATE plus an ``OrderEvent`` row
  in the caller's transaction. Broker calls happen outside transactions: commit the intent
  (``submit_started_at``), call out, apply the answer.
- An order is never placed twice: after a timeout or a network error the order is looked up
  by ``client_order_id`` before any resubmit (the same ``client_order_id`` is resent, so a
  broker that enforces uniqueness refuses a duplicate as well).
- Fills come from the growth of the broker's cumulative filled quantity: a repeated or older
  report changes nothing, and each fill is unique per (order, broker fill id). The position is
  updated in the fill's transaction, so it always equals the sum of its fills.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from django.db import IntegrityError, transaction
from django.db.models import F

from monitoring.services import alert_raise_safely
from quant.clock import Clock, SystemClock
from quant.errors import ConflictError, ValidationError
from quant.orders.fsm import InvalidTransition, OrderEventType, OrderStatus, transition
from quant.orders.positions import PositionBook, closed_quantity, fill_increment
from quant.risk.values import RiskVerdict
from research.models import Strategy
from trading.brokers.base import (
    BrokerClient,
    BrokerError,
    BrokerOrder,
    BrokerOrderStatus,
    FinalBrokerError,
    OrderNotFoundError,
    OrderTicket,
    RetryableBrokerError,
)
from trading.brokers.sync import call
from trading.models import Fill, Order, OrderEvent, OrderSource, Position

log = structlog.get_logger(__name__)

SUBMIT_ATTEMPTS = 3
RETRY_BACKOFF_SECONDS = 0.5
E = OrderEventType


RiskGate = Callable[[Order, Clock], RiskVerdict]


def client_order_id_new(*, strategy_id: int, now: datetime) -> str:
    """``{strategy_id}-{timestamp}-{uuid}`` (spec), at most 64 characters."""
    return f"{strategy_id}-{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex}"


def order_create(
    *,
    strategy: Strategy,
    mode: str,
    broker: str,
    symbol: str,
    side: str,
    quantity: Decimal,
    opening: bool,
    source: str = OrderSource.STRATEGY,
    order_type: str = "market",
    limit_price: Decimal | None = None,
    stop_price: Decimal | None = None,
    stop_distance: Decimal | None = None,
    time_in_force: str = "day",
    reason: str = "",
    clock: Clock | None = None,
    idempotency_key: str = "",
    idempotency_fingerprint: str = "",
) -> Order:
    """A PENDING order with a fresh ``client_order_id`` (validated; nothing stored on error).
    ``idempotency_key`` is stored by the same INSERT (``common.idempotency``)."""
    now = (clock or SystemClock()).now()
    problems = []
    if side not in ("buy", "sell"):
        problems.append(f"side: must be buy or sell, got {side!r}")
    if quantity is None or not Decimal(quantity).is_finite() or Decimal(quantity) <= 0:
        problems.append(f"quantity: must be > 0, got {quantity}")
    if order_type not in ("market", "limit", "stop"):
        problems.append(f"order_type: must be market, limit or stop, got {order_type!r}")
    if order_type == "limit" and (limit_price is None or limit_price <= 0):
        problems.append("limit_price: a limit order needs a positive limit price")
    if order_type == "stop" and (stop_price is None or stop_price <= 0):
        problems.append("stop_price: a stop order needs a positive stop price")
    if not symbol or not symbol.replace(".", "").replace("-", "").isalnum():
        problems.append(f"symbol: {symbol!r} is not a ticker")
    if problems:
        raise ValidationError("; ".join(problems), details={"problems": problems})
    with transaction.atomic():
        order = Order.objects.create(
            strategy=strategy,
            mode=mode,
            broker=broker,
            client_order_id=client_order_id_new(strategy_id=strategy.pk, now=now),
            symbol=symbol.upper(),
            side=side,
            order_type=order_type,
            time_in_force=time_in_force,
            quantity=Decimal(quantity),
            limit_price=limit_price,
            stop_price=stop_price,
            stop_distance=stop_distance,
            opening=opening,
            source=source,
            reason=reason[:200],
            idempotency_key=idempotency_key,
            idempotency_fingerprint=idempotency_fingerprint,
            created_at=now,
        )
        _note(order, "created", at=now, details={"source": source, "reason": reason})
    return order


def _note(order: Order, event: str, *, at: datetime, details: dict[str, Any] | None = None) -> None:
    OrderEvent.objects.create(
        order=order,
        event=event,
        from_status=order.status,
        to_status=order.status,
        at=at,
        details=details or {},
    )


def _transition(
    order: Order,
    event: OrderEventType,
    *,
    at: datetime,
    details: dict[str, Any] | None = None,
    **fields: Any,
) -> Order:
    """Compare-and-swap the status (inside the caller's transaction) and append the event."""
    old = OrderStatus(order.status)
    new = transition(old, event)
    if new.is_terminal:
        fields.setdefault("closed_at", at)
    updated = Order.objects.filter(pk=order.pk, status=old.value).update(
        status=new.value, updated_at=at, **fields
    )
    if updated != 1:
        raise ConflictError(
            f"order {order.client_order_id} changed under us (expected status {old.value})"
        )
    OrderEvent.objects.create(
        order=order,
        event=event.value,
        from_status=old.value,
        to_status=new.value,
        at=at,
        details=details or {},
    )
    order.status = new.value
    for name, value in fields.items():
        setattr(order, name, value)
    return order


# --- placing ------------------------------------------------------------------------------


def order_place(
    *,
    order: Order,
    broker: BrokerClient,
    risk: RiskGate,
    clock: Clock | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Order:
    """Run the risk gateway and, if it approves, send the order (at most once)."""
    clock = clock or SystemClock()
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        if order.status != OrderStatus.PENDING or order.submit_started_at is not None:
            return order  # already on its way, or decided
        now = clock.now()
        verdict = risk(order, clock)
        if not verdict.approved:
            log.info(
                "order.risk_rejected", client_order_id=order.client_order_id, reason=verdict.reason
            )
            return _transition(
                order,
                E.RISK_REJECT,
                at=now,
                details={"check": verdict.check, "reason": verdict.reason},
                reject_reason=verdict.reason,
                reference_price=verdict.reference_price,
            )
        Order.objects.filter(pk=order.pk).update(
            submit_started_at=now,
            submit_attempts=F("submit_attempts") + 1,
            reference_price=verdict.reference_price,
        )
        order.submit_started_at = now
        order.reference_price = verdict.reference_price
        _note(order, "submit_started", at=now, details={"broker": broker.name})
    return _send(order, broker, clock, sleep)


def _ticket(order: Order) -> OrderTicket:
    return OrderTicket(
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=order.side,
        quantity=order.quantity,
        order_type=order.order_type,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        time_in_force=order.time_in_force,
    )


def _send(
    order: Order, broker: BrokerClient, clock: Clock, sleep: Callable[[float], None]
) -> Order:
    ticket = _ticket(order)
    last_error: BrokerError | None = None
    for attempt in range(1, SUBMIT_ATTEMPTS + 1):
        try:
            report = call(broker.place_order(ticket))
        except RetryableBrokerError as error:
            last_error = error
            found = _lookup(order, broker)
            if found is not None:  # the broker got it: never send it again
                return order_apply_report(order=order, report=found, clock=clock)
            if attempt < SUBMIT_ATTEMPTS:
                sleep(error.retry_after or RETRY_BACKOFF_SECONDS * attempt)
            continue
        except FinalBrokerError as error:
            # "duplicate client_order_id": an earlier try landed
            try:
                found = call(broker.get_order_by_client_id(order.client_order_id))
            except RetryableBrokerError as lookup_error:
                if last_error is None:  # the first try: nothing of ours can be at the broker
                    found = None
                else:  # an earlier try may have landed: not a rejection, an unknown outcome
                    last_error = lookup_error
                    break
            if found is not None:
                return order_apply_report(order=order, report=found, clock=clock)
            with transaction.atomic():
                locked = Order.objects.select_for_update().get(pk=order.pk)
                return _transition(
                    locked,
                    E.BROKER_REJECT,
                    at=clock.now(),
                    details={"error": error.message},
                    reject_reason=f"Broker rejected: {error.message}",
                )
        return order_apply_report(order=order, report=report, clock=clock)
    # Unknown outcome: the order stays PENDING with submit_started_at; the poller looks it up.
    with transaction.atomic():
        _note(order, "submit_unknown", at=clock.now(), details={"error": str(last_error)})
    log.warning(
        "order.submit_unknown", client_order_id=order.client_order_id, error=str(last_error)
    )
    _alert(
        "warning",
        f"Order {order.client_order_id} ({order.side} {order.quantity} {order.symbol}): "
        f"broker unreachable after {SUBMIT_ATTEMPTS} attempts; it will be looked up again",
        key=f"trading.submit_unknown.{order.mode}",
    )
    order.refresh_from_db()
    return order


def _lookup(order: Order, broker: BrokerClient) -> BrokerOrder | None:
    try:
        return call(broker.get_order_by_client_id(order.client_order_id))
    except RetryableBrokerError:
        return None


# --- broker reports -----------------------------------------------------------------------


def order_apply_report(*, order: Order, report: BrokerOrder, clock: Clock | None = None) -> Order:
    """Bring the order up to the broker's report: fills first, then the status.

    Idempotent: a repeated report changes nothing, an older one (less filled, or an earlier
    ``updated_at``) is recorded as stale and ignored.
    """
    clock = clock or SystemClock()
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        now = clock.now()
        if report.client_order_id != order.client_order_id:
            raise ConflictError(
                f"broker report for {report.client_order_id} applied to {order.client_order_id}"
            )
        stale = report.filled_quantity < order.filled_quantity or (
            order.broker_updated_at is not None
            and report.updated_at is not None
            and report.updated_at < order.broker_updated_at
        )
        if stale:
            _note(order, "stale_report", at=now, details=_report_details(report))
            return order
        fields: dict[str, Any] = {}
        if not order.broker_order_id:
            fields["broker_order_id"] = report.broker_order_id
        if report.updated_at is not None:
            fields["broker_updated_at"] = report.updated_at
        try:
            order = _apply_fill(order, report, now, fields)
            order = _apply_status(order, report, now, fields)
        except InvalidTransition as error:
            log.error(
                "order.invalid_transition", client_order_id=order.client_order_id, error=str(error)
            )
            _note(order, "note", at=now, details={"invalid": str(error), **_report_details(report)})
            _alert_on_commit(
                "critical",
                f"Order {order.client_order_id}: broker report cannot be applied ({error}); "
                "reconciliation will flag the difference",
                key=f"trading.invalid_report.{order.pk}",
            )
            return order
        if fields:
            Order.objects.filter(pk=order.pk).update(**fields)
            for name, value in fields.items():
                setattr(order, name, value)
    return order


def _apply_fill(order: Order, report: BrokerOrder, now: datetime, fields: dict[str, Any]) -> Order:
    increment = fill_increment(
        filled_before=order.filled_quantity,
        avg_before=order.avg_fill_price,
        filled_after=report.filled_quantity,
        avg_after=report.filled_avg_price,
    )
    if increment is None:
        return order
    quantity, price = increment
    if report.filled_quantity > order.quantity:
        raise InvalidTransition(OrderStatus(order.status), E.FILL)
    event = E.FILL if report.filled_quantity == order.quantity else E.PARTIAL_FILL
    # Check before booking: a fill the order cannot take (it is cancelled, say) must leave no
    # Fill row and no position change behind, since the caller keeps its transaction.
    transition(order.status, event)
    commission = max(report.commission - order.commission, Decimal("0"))
    ts = report.updated_at or now
    fill_id = f"{report.broker_order_id}:{report.filled_quantity.normalize():f}"
    position, book = _position_book(order, quantity=quantity, price=price, commission=commission)
    try:
        with transaction.atomic():
            Fill.objects.create(
                order=order,
                broker_fill_id=fill_id,
                strategy_id=order.strategy_id,
                mode=order.mode,
                symbol=order.symbol,
                side=order.side,
                quantity=quantity,
                price=price,
                commission=commission,
                closed_quantity=closed_quantity(position.quantity, order.side, quantity),
                realized_pnl=book.realized_pnl - position.realized_pnl,
                ts=ts,
            )
    except IntegrityError:
        return order  # this fill is already booked (a concurrent poller won)
    _position_save(position, book, ts=ts)
    return _transition(
        order,
        event,
        at=now,
        details={"quantity": str(quantity), "price": str(price), "fill_id": fill_id},
        filled_quantity=report.filled_quantity,
        avg_fill_price=report.filled_avg_price,
        commission=order.commission + commission,
    )


def _position_book(
    order: Order, *, quantity: Decimal, price: Decimal, commission: Decimal
) -> tuple[Position, PositionBook]:
    """The strategy's position in the symbol, locked, and its book after this fill."""
    key: dict[str, Any] = {
        "strategy_id": order.strategy_id,
        "mode": order.mode,
        "symbol": order.symbol,
    }
    try:
        with transaction.atomic():
            Position.objects.get_or_create(**key)
    except IntegrityError:
        pass  # created concurrently
    position = Position.objects.select_for_update().get(**key)
    book = PositionBook(position.quantity, position.avg_price, position.realized_pnl).apply(
        side=order.side, quantity=quantity, price=price, commission=commission
    )
    return position, book


def _position_save(position: Position, book: PositionBook, *, ts: datetime) -> None:
    position.quantity, position.avg_price, position.realized_pnl = (
        book.quantity,
        book.avg_price,
        book.realized_pnl,
    )
    position.last_fill_at = ts
    position.save(
        update_fields=["quantity", "avg_price", "realized_pnl", "last_fill_at", "updated_at"]
    )


def _apply_status(
    order: Order, report: BrokerOrder, now: datetime, fields: dict[str, Any]
) -> Order:
    status, details = report.status, _report_details(report)
    if status in (BrokerOrderStatus.NEW, BrokerOrderStatus.PARTIALLY_FILLED):
        if order.status == OrderStatus.PENDING:
            return _transition(order, E.SUBMIT_ACK, at=now, details=details, submitted_at=now)
        return order
    if status is BrokerOrderStatus.FILLED:
        if report.filled_quantity != order.quantity:
            raise InvalidTransition(OrderStatus(order.status), E.FILL)
        return order  # the fill above moved it to FILLED
    if OrderStatus(order.status).is_terminal:
        return order  # a repeated final report
    if status is BrokerOrderStatus.CANCELLED:
        return _transition(order, E.CANCEL, at=now, details=details)
    if status is BrokerOrderStatus.EXPIRED:
        return _transition(order, E.EXPIRE, at=now, details=details)
    reason = f"Broker rejected: {report.reject_reason or 'no reason given'}"
    return _transition(order, E.BROKER_REJECT, at=now, details=details, reject_reason=reason)


def _report_details(report: BrokerOrder) -> dict[str, Any]:
    return {
        "broker_order_id": report.broker_order_id,
        "status": report.status.value,
        "filled_quantity": str(report.filled_quantity),
        "filled_avg_price": None
        if report.filled_avg_price is None
        else str(report.filled_avg_price),
        "updated_at": None if report.updated_at is None else report.updated_at.isoformat(),
    }


# --- polling, recovery, cancel ------------------------------------------------------------


def order_refresh(*, order: Order, broker: BrokerClient, clock: Clock | None = None) -> Order:
    """Ask the broker about one open order and apply its answer.

    A PENDING order whose submission started but was never acknowledged is looked up by
    ``client_order_id``; if the broker never received it (and the grace period is over) it is
    rejected with that reason rather than sent late at a price nobody checked. A PENDING order
    that never got to the risk check (its request died in between) is cancelled once the
    grace period is over.
    """
    clock = clock or SystemClock()
    if not order.is_open:
        return order
    if order.broker_order_id:
        report: BrokerOrder | None
        try:
            report = call(broker.get_order_status(order.broker_order_id))
        except OrderNotFoundError:
            report = call(broker.get_order_by_client_id(order.client_order_id))
        if report is None:
            return _never_received(order, clock)
        return order_apply_report(order=order, report=report, clock=clock)
    if order.submit_started_at is None:
        if clock.now() - order.created_at < SUBMIT_GRACE:
            return order  # not yet through the gateway
        return _never_sent(order, clock)
    found = call(broker.get_order_by_client_id(order.client_order_id))
    if found is not None:
        return order_apply_report(order=order, report=found, clock=clock)
    if clock.now() - order.submit_started_at < SUBMIT_GRACE:
        return order  # a submitter may still be talking to the broker
    return _never_received(order, clock)


SUBMIT_GRACE = timedelta(seconds=30)


def _never_received(order: Order, clock: Clock) -> Order:
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        if locked.status != OrderStatus.PENDING:
            return locked
        return _transition(
            locked,
            E.BROKER_REJECT,
            at=clock.now(),
            details={"lookup": "not found"},
            reject_reason="Not placed: the broker never received it (lookup by client_order_id "
            "found nothing after the submission was interrupted)",
        )


def _never_sent(order: Order, clock: Clock) -> Order:
    """End an order stored but never taken to the risk check (its request or task died in
    between, and no retry carried it on within the grace period): nothing was sent, so it is
    cancelled here, never sent late at a price nobody checked."""
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        if locked.status != OrderStatus.PENDING or locked.submit_started_at is not None:
            return locked
        return _transition(
            locked,
            E.CANCEL,
            at=clock.now(),
            details={"reason": "never sent: its request ended before the risk check"},
        )


def order_cancel(
    *, order: Order, broker: BrokerClient, clock: Clock | None = None, reason: str = ""
) -> Order:
    """Cancel an open order: locally if it never left, else at the broker (then refresh)."""
    clock = clock or SystemClock()
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        if not locked.is_open:
            return locked
        now = clock.now()
        if locked.status == OrderStatus.PENDING and locked.submit_started_at is None:
            return _transition(locked, E.CANCEL, at=now, details={"reason": reason or "cancelled"})
        Order.objects.filter(pk=locked.pk).update(cancel_requested_at=now)
        _note(locked, "cancel_requested", at=now, details={"reason": reason})
    if not locked.broker_order_id:
        locked = order_refresh(order=locked, broker=broker, clock=clock)
        if not locked.is_open or not locked.broker_order_id:
            return locked
    with contextlib.suppress(OrderNotFoundError):
        call(broker.cancel_order(locked.broker_order_id))
    return order_refresh(order=locked, broker=broker, clock=clock)


def _alert(severity: str, message: str, *, key: str) -> None:
    alert_raise_safely(severity=severity, source="trading.orders", message=message, key=key)


def _alert_on_commit(severity: str, message: str, *, key: str) -> None:
    transaction.on_commit(lambda: _alert(severity, message, key=key))

"""``order_apply_report``: broker reports become fills, positions and status changes exactly once,
whatever the order, repetition or loss of the reports."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitoring.models import Alert
from quant.clock import ManualClock
from quant.orders.fsm import OrderStatus
from quant.orders.positions import PositionBook
from research.models import Strategy
from tests.trading.conftest import START, MakeOrder, rolled_back
from tests.trading.scripted_broker import ScriptedBroker
from trading.brokers.base import BrokerOrder, BrokerOrderStatus, OrderTicket
from trading.brokers.sync import call
from trading.models import Fill, Order, OrderEvent, Position
from trading.services.orders import order_apply_report, order_create

D = Decimal
BS = BrokerOrderStatus
NOTES = ("created", "submit_started", "cancel_requested", "stale_report", "note", "submit_unknown")


def report(
    order: Order,
    status: BrokerOrderStatus,
    *,
    filled: str = "0",
    avg: str | None = None,
    commission: str = "0",
    second: int = 1,
    reason: str = "",
) -> BrokerOrder:
    """The broker's report of ``order`` at START + ``second`` seconds."""
    return BrokerOrder(
        broker_order_id="B0001",
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=order.side,
        quantity=order.quantity,
        status=status,
        filled_quantity=D(filled),
        filled_avg_price=None if avg is None else D(avg),
        commission=D(commission),
        updated_at=START + timedelta(seconds=second),
        reject_reason=reason,
    )


def apply(order: Order, broker_report: BrokerOrder, clock: ManualClock) -> Order:
    clock.advance(timedelta(milliseconds=10))
    return order_apply_report(order=order, report=broker_report, clock=clock)


def changes(order: Order) -> list[tuple[str, str, str]]:
    """(event, from, to) of the order's status changes, oldest first."""
    return [
        (e.event, e.from_status, e.to_status)
        for e in OrderEvent.objects.filter(order=order).exclude(event__in=NOTES).order_by("id")
    ]


def fills(order: Order) -> list[tuple[Decimal, Decimal, Decimal]]:
    return [
        (f.quantity, f.price, f.commission) for f in Fill.objects.filter(order=order).order_by("id")
    ]


def position(strategy: Strategy, symbol: str = "SPY") -> PositionBook:
    row = Position.objects.filter(strategy=strategy, mode="paper", symbol=symbol).first()
    if row is None:
        return PositionBook()
    return PositionBook(row.quantity, row.avg_price, row.realized_pnl)


# --- examples -------------------------------------------------------------------------------


def test_first_report_acknowledges_the_order(make_order: MakeOrder, clock: ManualClock) -> None:
    order = make_order()

    order = apply(order, report(order, BS.NEW), clock)

    order.refresh_from_db()
    assert order.status == OrderStatus.SUBMITTED
    assert order.broker_order_id == "B0001"
    assert order.submitted_at == clock.now()
    assert order.broker_updated_at == START + timedelta(seconds=1)
    assert changes(order) == [("submit_ack", "pending", "submitted")]


def test_a_repeated_report_changes_nothing(make_order: MakeOrder, clock: ManualClock) -> None:
    order = make_order()
    apply(order, report(order, BS.NEW), clock)
    partial = report(order, BS.PARTIALLY_FILLED, filled="4", avg="100", commission="1", second=2)
    apply(order, partial, clock)
    order.refresh_from_db()
    before = Order.objects.filter(pk=order.pk).values().get()
    events = OrderEvent.objects.filter(order=order).count()

    for _ in range(3):
        apply(order, partial, clock)

    assert Order.objects.filter(pk=order.pk).values().get() == before
    assert OrderEvent.objects.filter(order=order).count() == events
    assert fills(order) == [(D(4), D(100), D(1))]
    assert position(order.strategy) == PositionBook(D(4), D(100), D(-1))


@pytest.mark.parametrize(
    ("older", "why"),
    [
        (dict(status=BS.PARTIALLY_FILLED, filled="4", avg="100", second=2), "less filled"),
        (dict(status=BS.PARTIALLY_FILLED, filled="6", avg="101", second=3), "earlier"),
        (dict(status=BS.NEW, second=1), "less filled and earlier"),
    ],
)
def test_an_older_report_is_recorded_as_stale_and_ignored(
    make_order: MakeOrder, clock: ManualClock, older: dict[str, Any], why: str
) -> None:
    order = make_order()
    apply(order, report(order, BS.NEW, second=1), clock)
    apply(order, report(order, BS.PARTIALLY_FILLED, filled="6", avg="101", second=3), clock)
    apply(order, report(order, BS.CANCELLED, filled="6", avg="101", second=4), clock)
    order.refresh_from_db()
    before = Order.objects.filter(pk=order.pk).values().get()

    status = older.pop("status")
    apply(order, report(order, status, **older), clock)

    assert Order.objects.filter(pk=order.pk).values().get() == before, why
    stale = OrderEvent.objects.filter(order=order).last()
    assert stale is not None
    assert (stale.event, stale.from_status, stale.to_status) == (
        "stale_report",
        "cancelled",
        "cancelled",
    )
    assert stale.details["filled_quantity"] == older.get("filled", "0")
    assert fills(order) == [(D(6), D(101), D(0))]


def test_partial_partial_filled_books_each_fill_at_its_derived_price(
    make_order: MakeOrder, clock: ManualClock
) -> None:
    order = make_order(quantity=D(10))
    apply(order, report(order, BS.NEW), clock)

    # fills at the broker: 4 @ 100, 4 @ 102.50, 2 @ 106.25, commission 0.40 + 0.40 + 0.20
    for status, filled, avg, commission, second in [
        (BS.PARTIALLY_FILLED, "4", "100", "0.40", 2),
        (BS.PARTIALLY_FILLED, "8", "101.25", "0.80", 3),
        (BS.FILLED, "10", "102.25", "1.00", 4),
    ]:
        broker_report = report(
            order, status, filled=filled, avg=avg, commission=commission, second=second
        )
        apply(order, broker_report, clock)

    order.refresh_from_db()
    assert (order.status, order.filled_quantity, order.avg_fill_price, order.commission) == (
        OrderStatus.FILLED,
        D(10),
        D("102.25"),
        D(1),
    )
    assert order.closed_at == clock.now()
    assert fills(order) == [
        (D(4), D(100), D("0.40")),
        (D(4), D("102.50"), D("0.40")),
        (D(2), D("106.25"), D("0.20")),
    ]
    fill_ids = list(Fill.objects.filter(order=order).values_list("broker_fill_id", flat=True))
    assert len(set(fill_ids)) == 3
    assert all(fill_id.startswith("B0001:") for fill_id in fill_ids)
    assert position(order.strategy) == PositionBook(D(10), D("102.25"), D(-1))
    assert changes(order) == [
        ("submit_ack", "pending", "submitted"),
        ("partial_fill", "submitted", "partially_filled"),
        ("partial_fill", "partially_filled", "partially_filled"),
        ("fill", "partially_filled", "filled"),
    ]


def test_derived_price_of_a_rounded_average(make_order: MakeOrder, clock: ManualClock) -> None:
    order = make_order(quantity=D(4))
    apply(order, report(order, BS.PARTIALLY_FILLED, filled="3", avg="100"), clock)
    # 3 @ 100 then 1 @ 101.33333332: the broker rounds the new average to 100.33333333
    apply(order, report(order, BS.FILLED, filled="4", avg="100.33333333"), clock)

    assert fills(order) == [(D(3), D(100), D(0)), (D(1), D("101.33333332"), D(0))]


def test_a_sell_reduces_the_position_and_realizes_pnl(
    make_order: MakeOrder, clock: ManualClock
) -> None:
    buy, sell = make_order(quantity=D(10)), make_order(side="sell", quantity=D(4), opening=False)
    apply(buy, report(buy, BS.FILLED, filled="10", avg="100", commission="1"), clock)

    apply(
        sell, replace(report(sell, BS.FILLED, filled="4", avg="110"), broker_order_id="B2"), clock
    )

    assert position(buy.strategy) == PositionBook(D(6), D(100), D(39))  # 4 x 10 - 1


def test_cancel_after_partial_keeps_the_filled_part(
    make_order: MakeOrder, clock: ManualClock
) -> None:
    order = make_order(quantity=D(10))
    apply(order, report(order, BS.NEW), clock)
    apply(order, report(order, BS.PARTIALLY_FILLED, filled="3", avg="99.5", second=2), clock)

    apply(order, report(order, BS.CANCELLED, filled="3", avg="99.5", second=3), clock)

    order.refresh_from_db()
    assert (order.status, order.filled_quantity, order.closed_at) == (
        OrderStatus.CANCELLED,
        D(3),
        clock.now(),
    )
    assert fills(order) == [(D(3), D("99.5"), D(0))]
    assert position(order.strategy).quantity == D(3)
    assert changes(order)[-1] == ("cancel", "partially_filled", "cancelled")


def test_a_cancel_report_books_fills_it_reveals_first(
    make_order: MakeOrder, clock: ManualClock
) -> None:
    order = make_order(quantity=D(10))
    apply(order, report(order, BS.NEW), clock)

    apply(order, report(order, BS.CANCELLED, filled="3", avg="99.5", second=3), clock)

    assert fills(order) == [(D(3), D("99.5"), D(0))]
    assert changes(order)[1:] == [
        ("partial_fill", "submitted", "partially_filled"),
        ("cancel", "partially_filled", "cancelled"),
    ]


def test_expiry_after_partial(make_order: MakeOrder, clock: ManualClock) -> None:
    order = make_order(quantity=D(10))
    apply(order, report(order, BS.PARTIALLY_FILLED, filled="2", avg="50", second=2), clock)

    order = apply(order, report(order, BS.EXPIRED, filled="2", avg="50", second=3), clock)

    assert (order.status, order.filled_quantity) == (OrderStatus.EXPIRED, D(2))
    assert changes(order) == [
        ("partial_fill", "pending", "partially_filled"),
        ("expire", "partially_filled", "expired"),
    ]


def test_broker_rejection_stores_the_reason(make_order: MakeOrder, clock: ManualClock) -> None:
    order = make_order()

    order = apply(order, report(order, BS.REJECTED, reason="market closed"), clock)

    assert order.status == OrderStatus.REJECTED
    assert Order.objects.get(pk=order.pk).reject_reason == "Broker rejected: market closed"
    assert changes(order) == [("broker_reject", "pending", "rejected")]


def test_a_fill_reported_after_a_terminal_state_is_not_booked_and_raises_an_alert(
    make_order: MakeOrder,
    clock: ManualClock,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    order = make_order(quantity=D(10))
    apply(order, report(order, BS.NEW), clock)
    apply(order, report(order, BS.CANCELLED, second=2), clock)
    order.refresh_from_db()
    before = Order.objects.filter(pk=order.pk).values().get()

    with django_capture_on_commit_callbacks() as callbacks:
        apply(order, report(order, BS.FILLED, filled="10", avg="100", second=3), clock)
    # Run the alert callback by hand: alert_raise queues the delivery on the (test) transaction's
    # commit, which never comes, so nothing leaves the process.
    for callback in callbacks:
        callback()

    assert Order.objects.filter(pk=order.pk).values().get() == before
    assert fills(order) == []
    assert not Position.objects.filter(strategy=order.strategy).exclude(quantity=0).exists()
    assert changes(order)[-1] == ("cancel", "submitted", "cancelled")
    note = OrderEvent.objects.filter(order=order).last()
    assert note is not None
    assert note.event == "note"
    assert "cannot take event 'fill'" in note.details["invalid"]
    alert = Alert.objects.get(key=f"trading.invalid_report.{order.pk}")
    assert alert.severity == "critical"
    assert order.client_order_id in alert.message


def test_a_report_filling_more_than_the_order_is_refused(
    make_order: MakeOrder, clock: ManualClock, django_capture_on_commit_callbacks: Any
) -> None:
    order = make_order(quantity=D(10))

    with django_capture_on_commit_callbacks() as callbacks:
        apply(order, report(order, BS.FILLED, filled="12", avg="100"), clock)

    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == (OrderStatus.PENDING, D(0))
    assert fills(order) == []
    assert len(callbacks) == 1  # the alert


def test_a_report_of_another_order_is_a_conflict(make_order: MakeOrder, clock: ManualClock) -> None:
    from quant.errors import ConflictError

    order, other = make_order(), make_order()

    with pytest.raises(ConflictError):
        apply(order, report(other, BS.NEW), clock)


def test_fills_are_unique_per_order_and_broker_fill_id(
    make_order: MakeOrder, clock: ManualClock
) -> None:
    order = make_order()
    apply(order, report(order, BS.PARTIALLY_FILLED, filled="4", avg="100"), clock)
    booked = Fill.objects.get(order=order)

    with pytest.raises(IntegrityError), transaction.atomic():
        Fill.objects.create(
            order=order,
            broker_fill_id=booked.broker_fill_id,
            strategy=order.strategy,
            mode=order.mode,
            symbol=order.symbol,
            side=order.side,
            quantity=D(1),
            price=D(1),
            ts=booked.ts,
        )
    with pytest.raises(ValueError, match="append-only"):
        booked.save()


# --- properties: shuffled, duplicated and dropped reports -----------------------------------
#
# A history is what the broker reports about one order over its life (NEW, cumulative fills,
# then filled / cancelled / expired / rejected). The scripted broker writes it, so the reports
# carry the broker's own cumulative averages and commissions. Quantities are whole shares so
# the position can be replayed exactly (prices and averages carry 8 places).

ENDINGS = {
    "cancelled": OrderStatus.CANCELLED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
STATUS_OF_REPORT = {
    BS.NEW: OrderStatus.SUBMITTED,
    BS.PARTIALLY_FILLED: OrderStatus.PARTIALLY_FILLED,
    BS.FILLED: OrderStatus.FILLED,
    BS.CANCELLED: OrderStatus.CANCELLED,
    BS.EXPIRED: OrderStatus.EXPIRED,
    BS.REJECTED: OrderStatus.REJECTED,
}


@dataclass(frozen=True)
class Plan:
    side: str
    quantity: int
    chunks: tuple[tuple[int, Decimal, Decimal], ...]  # (quantity, price, commission) per fill
    ending: str  # "filled" when the chunks fill the order, else cancelled / expired / rejected


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    quantity = draw(st.integers(1, 40))
    sizes: list[int] = []
    left = quantity
    for _ in range(draw(st.integers(0, 4))):
        if left == 0:
            break
        size = draw(st.integers(1, left))
        sizes.append(size)
        left -= size
    chunks = tuple(
        (
            size,
            draw(st.decimals(min_value=D(1), max_value=D(500), places=2)),
            draw(st.decimals(min_value=D(0), max_value=D(2), places=2)),
        )
        for size in sizes
    )
    if left == 0:
        ending = "filled"
    else:
        ending = draw(
            st.sampled_from(["cancelled", "expired"] + (["rejected"] if not sizes else []))
        )
    return Plan(draw(st.sampled_from(["buy", "sell"])), quantity, chunks, ending)


def broker_history(broker: ScriptedBroker, order: Order, plan: Plan) -> list[BrokerOrder]:
    """Every report the broker would give of ``order`` while it lives ``plan``."""
    ticket = OrderTicket(order.client_order_id, order.symbol, order.side, order.quantity)
    history = [call(broker.place_order(ticket))]
    for size, price, commission in plan.chunks:
        history.append(broker.fill(order.client_order_id, D(size), price, commission=commission))
    if plan.ending == "cancelled":
        call(broker.cancel_order(history[0].broker_order_id))
        history.append(broker.order(order.client_order_id))
    elif plan.ending == "expired":
        history.append(broker.expire(order.client_order_id))
    elif plan.ending == "rejected":
        history.append(broker.reject(order.client_order_id, "halted"))
    return history


def check_invariants(strategy: Strategy, orders: list[Order], seen: dict[int, str]) -> None:
    signed = D(0)
    for order in orders:
        order.refresh_from_db()
        booked = Fill.objects.filter(order=order).aggregate(q=Sum("quantity"), c=Sum("commission"))
        assert order.filled_quantity <= order.quantity
        assert order.filled_quantity == (booked["q"] or 0)
        assert order.commission == (booked["c"] or 0)
        before = seen.get(order.pk)
        if before is not None and OrderStatus(before).is_terminal:
            assert order.status == before, "a terminal order moved"
        seen[order.pk] = order.status
        signed += order.filled_quantity if order.side == "buy" else -order.filled_quantity
    replay = PositionBook()
    for fill in Fill.objects.filter(strategy=strategy).order_by("id"):
        replay = replay.apply(
            side=fill.side, quantity=fill.quantity, price=fill.price, commission=fill.commission
        )
    assert replay.quantity == signed
    assert position(strategy) == replay


def check_final(order: Order, delivered: list[BrokerOrder]) -> None:
    """The order is where the newest report it received puts it."""
    order.refresh_from_db()
    if not delivered:
        assert (order.status, order.filled_quantity) == (OrderStatus.PENDING, D(0))
        return
    newest = max(delivered, key=lambda r: r.updated_at or START)
    assert order.status == STATUS_OF_REPORT[newest.status]
    assert order.filled_quantity == newest.filled_quantity
    assert order.commission == newest.commission
    assert order.avg_fill_price == newest.filled_avg_price
    assert order.broker_updated_at == newest.updated_at
    assert order.broker_order_id == newest.broker_order_id
    transitions = changes(order)
    for (_, _, to), (_, source, _) in itertools.pairwise(transitions):
        assert source == to, transitions
    assert transitions[-1][2] == order.status
    fill_events = [t for t in transitions if t[0] in ("partial_fill", "fill")]
    assert len(fill_events) == Fill.objects.filter(order=order).count()
    assert not OrderEvent.objects.filter(order=order, event="note").exists()


def run_scenario(
    strategy: Strategy,
    plan_list: list[Plan],
    deliveries: list[tuple[int, int]],
    last_at: list[int] | None,
) -> None:
    clock = ManualClock(START)
    broker = ScriptedBroker(clock=clock)
    orders = [
        order_create(
            strategy=strategy,
            mode="paper",
            broker=broker.name,
            symbol="SPY",
            side=plan.side,
            quantity=D(plan.quantity),
            opening=True,
            clock=clock,
        )
        for plan in plan_list
    ]
    histories = []
    for order, plan in zip(orders, plan_list, strict=True):
        clock.advance(timedelta(seconds=1))
        histories.append(broker_history(broker, order, plan))
    sequence = [(i % len(orders), j % len(histories[i % len(orders)])) for i, j in deliveries]
    for i, at in enumerate(last_at or []):  # each final report somewhere in the stream
        sequence.insert(at, (i, len(histories[i]) - 1))
    delivered: list[list[BrokerOrder]] = [[] for _ in orders]
    seen: dict[int, str] = {}
    for i, j in sequence:
        clock.advance(timedelta(milliseconds=5))
        order_apply_report(order=orders[i], report=histories[i][j], clock=clock)
        delivered[i].append(histories[i][j])
        check_invariants(strategy, orders, seen)
    for order, received, history in zip(orders, delivered, histories, strict=True):
        check_final(order, received)
        if history[-1] in received:  # the last report arrived: the order ended as the broker's
            assert order.status == STATUS_OF_REPORT[history[-1].status]
            assert order.status != OrderStatus.PENDING
            assert order.filled_quantity == history[-1].filled_quantity
    if last_at is not None:
        broker_net = {p.symbol: p.quantity for p in call(broker.get_positions())}
        assert position(strategy).quantity == broker_net.get("SPY", D(0))


deliveries = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 7)), max_size=14)
NO_FIXTURE_RESET = [HealthCheck.function_scoped_fixture]  # each example rolls itself back


@settings(max_examples=40, deadline=None, suppress_health_check=NO_FIXTURE_RESET)
@given(plan_list=st.lists(plans(), min_size=1, max_size=3), order_of_delivery=deliveries)
def test_shuffled_duplicated_and_dropped_reports_keep_every_invariant(
    strategy: Strategy, plan_list: list[Plan], order_of_delivery: list[tuple[int, int]]
) -> None:
    """Any subset of the reports in any order, repeated: the books stay consistent after every
    report and each order ends where its newest received report puts it (where the broker
    left it, when that was the last one)."""
    with rolled_back():
        run_scenario(strategy, plan_list, order_of_delivery, None)


@settings(max_examples=30, deadline=None, suppress_health_check=NO_FIXTURE_RESET)
@given(
    plan_list=st.lists(plans(), min_size=1, max_size=3),
    order_of_delivery=deliveries,
    last_at=st.lists(st.integers(0, 20), min_size=3, max_size=3),
)
def test_when_the_last_reports_arrive_the_books_match_the_broker(
    strategy: Strategy,
    plan_list: list[Plan],
    order_of_delivery: list[tuple[int, int]],
    last_at: list[int],
) -> None:
    """The same, with each order's final report delivered somewhere in the stream: every order
    ends as the broker has it and the position equals the broker's net position."""
    with rolled_back():
        run_scenario(strategy, plan_list, order_of_delivery, last_at[: len(plan_list)])

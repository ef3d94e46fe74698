"""The order path against the scripted broker: risk gate, at-most-once sending through network
faults, the unknown outcome, restart recovery by reconciliation, and cancelling."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitoring.models import Alert
from quant.clock import ManualClock
from quant.orders.fsm import OrderStatus
from research.models import Strategy
from tests.trading.conftest import START, MakeOrder, approve_at, reject_with, rolled_back
from tests.trading.scripted_broker import Fault, ScriptedBroker
from trading.brokers.base import BrokerOrder, BrokerOrderStatus, RetryableBrokerError
from trading.models import Order, OrderEvent, Position
from trading.services import orders as order_service
from trading.services.orders import (
    SUBMIT_ATTEMPTS,
    SUBMIT_GRACE,
    order_cancel,
    order_create,
    order_place,
    order_refresh,
)
from trading.services.reconcile import (
    forget_process_reconciliation,
    reconcile,
    reconciled_in_process,
)

D = Decimal
BS = BrokerOrderStatus
NEVER_RECEIVED = "Not placed: the broker never received it"
REPORTED = {
    BS.NEW: OrderStatus.SUBMITTED,
    BS.PARTIALLY_FILLED: OrderStatus.PARTIALLY_FILLED,
    BS.FILLED: OrderStatus.FILLED,
    BS.CANCELLED: OrderStatus.CANCELLED,
    BS.EXPIRED: OrderStatus.EXPIRED,
    BS.REJECTED: OrderStatus.REJECTED,
}


class Sleeps(list[float]):
    """``sleep`` for ``order_place``: records the back-off instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def place(order: Order, broker: ScriptedBroker, clock: ManualClock, sleeps: Sleeps) -> Order:
    return order_place(
        order=order, broker=broker, risk=approve_at("101.5"), clock=clock, sleep=sleeps
    )


def events(order: Order) -> list[str]:
    return list(
        OrderEvent.objects.filter(order=order).order_by("id").values_list("event", flat=True)
    )


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def lenient_broker(clock: ManualClock) -> ScriptedBroker:
    """A broker that stores a second order under a known client_order_id instead of refusing
    it: a double send by our code shows up as two orders."""
    return ScriptedBroker(clock=clock, unique_client_ids=False)


# --- placing --------------------------------------------------------------------------------


def test_an_approved_order_is_submitted_with_the_broker_id(
    make_order: MakeOrder, broker: ScriptedBroker, clock: ManualClock, sleeps: Sleeps
) -> None:
    order = make_order()

    order = place(order, broker, clock, sleeps)

    order.refresh_from_db()
    held = broker.order(order.client_order_id)
    assert (order.status, order.broker_order_id) == (OrderStatus.SUBMITTED, held.broker_order_id)
    assert (order.submit_started_at, order.submitted_at) == (clock.now(), clock.now())
    assert (order.submit_attempts, order.reference_price) == (1, D("101.5"))
    assert (held.symbol, held.side, held.quantity) == ("SPY", "buy", D(10))
    assert events(order) == ["created", "submit_started", "submit_ack"]
    assert broker.calls == ["place_order"]
    assert sleeps == []


def test_placing_twice_sends_once(
    make_order: MakeOrder, broker: ScriptedBroker, clock: ManualClock, sleeps: Sleeps
) -> None:
    order = place(make_order(), broker, clock, sleeps)

    again = place(order, broker, clock, sleeps)

    assert again.status == OrderStatus.SUBMITTED
    assert broker.place_calls[order.client_order_id] == 1


def test_a_risk_rejected_order_stores_the_reason_verbatim_and_never_reaches_the_broker(
    make_order: MakeOrder, broker: ScriptedBroker, clock: ManualClock
) -> None:
    order = make_order()
    reason = "Max risk exceeded: 2.5% > 2.0%"

    order = order_place(
        order=order, broker=broker, risk=reject_with(reason, check="max_risk"), clock=clock
    )

    order.refresh_from_db()
    assert (order.status, order.reject_reason) == (OrderStatus.REJECTED, reason)
    assert order.submit_started_at is None
    assert order.closed_at == clock.now()
    assert broker.calls == []
    event = OrderEvent.objects.filter(order=order).last()
    assert event is not None
    assert (event.event, event.from_status, event.to_status) == (
        "risk_reject",
        "pending",
        "rejected",
    )
    assert event.details == {"check": "max_risk", "reason": reason}


def test_a_broker_refusal_rejects_the_order_with_the_brokers_message(
    make_order: MakeOrder, broker: ScriptedBroker, clock: ManualClock, sleeps: Sleeps
) -> None:
    order = make_order()
    broker.script("place_order", Fault.FINAL, message="insufficient buying power")

    order = place(order, broker, clock, sleeps)

    order.refresh_from_db()
    assert order.status == OrderStatus.REJECTED
    assert order.reject_reason == "Broker rejected: insufficient buying power"
    assert broker.orders_for(order.client_order_id) == []
    assert broker.calls == ["place_order", "get_order_by_client_id"]  # no resend after a refusal


def test_an_order_stored_before_a_lost_answer_is_found_and_not_sent_again(
    make_order: MakeOrder, lenient_broker: ScriptedBroker, clock: ManualClock, sleeps: Sleeps
) -> None:
    broker = lenient_broker
    order = make_order()
    broker.script("place_order", Fault.AFTER)

    order = place(order, broker, clock, sleeps)

    assert order.status == OrderStatus.SUBMITTED
    assert len(broker.orders_for(order.client_order_id)) == 1
    assert broker.place_calls[order.client_order_id] == 1
    assert order.broker_order_id == broker.order(order.client_order_id).broker_order_id
    assert broker.calls == ["place_order", "get_order_by_client_id"]
    assert sleeps == []


def test_an_order_lost_before_the_broker_is_resent_with_the_same_client_order_id(
    make_order: MakeOrder, lenient_broker: ScriptedBroker, clock: ManualClock, sleeps: Sleeps
) -> None:
    broker = lenient_broker
    order = make_order()
    broker.script("place_order", Fault.BEFORE)

    order = place(order, broker, clock, sleeps)

    assert order.status == OrderStatus.SUBMITTED
    assert len(broker.orders_for(order.client_order_id)) == 1
    assert broker.calls == ["place_order", "get_order_by_client_id", "place_order"]
    assert sleeps == [0.5]


def test_a_resend_refused_as_a_duplicate_finds_the_first_try(
    make_order: MakeOrder, broker: ScriptedBroker, clock: ManualClock, sleeps: Sleeps
) -> None:
    """The first try landed but neither its answer nor the lookup came back; the resend is
    refused as a duplicate and the lookup after the refusal finds the order."""
    order = make_order()
    broker.script("place_order", Fault.AFTER)
    broker.script("get_order_by_client_id", Fault.BEFORE)

    order = place(order, broker, clock, sleeps)

    assert order.status == OrderStatus.SUBMITTED
    assert len(broker.orders_for(order.client_order_id)) == 1
    assert broker.place_calls[order.client_order_id] == 2  # the second was refused


def test_a_duplicate_refusal_that_cannot_be_looked_up_leaves_the_outcome_unknown(
    make_order: MakeOrder, broker: ScriptedBroker, clock: ManualClock, sleeps: Sleeps
) -> None:
    """Not "rejected": the broker holds the order (it said so by refusing the duplicate)."""
    order = make_order()
    broker.script("place_order", Fault.AFTER)
    broker.script("get_order_by_client_id", Fault.BEFORE, Fault.BEFORE)

    order = place(order, broker, clock, sleeps)

    assert (order.status, order.reject_reason) == (OrderStatus.PENDING, "")
    clock.advance(SUBMIT_GRACE)
    order = order_refresh(order=order, broker=broker, clock=clock)
    assert order.status == OrderStatus.SUBMITTED
    assert len(broker.orders_for(order.client_order_id)) == 1


def test_an_unknown_outcome_stays_pending_and_raises_an_alert(
    make_order: MakeOrder, lenient_broker: ScriptedBroker, clock: ManualClock, sleeps: Sleeps
) -> None:
    broker = lenient_broker
    order = make_order()
    broker.script("place_order", *[Fault.BEFORE] * SUBMIT_ATTEMPTS)

    order = place(order, broker, clock, sleeps)

    assert order.status == OrderStatus.PENDING
    assert order.submit_started_at == clock.now()
    assert order.broker_order_id == ""
    assert broker.orders_for(order.client_order_id) == []
    assert sleeps == [0.5, 1.0]
    assert events(order) == ["created", "submit_started", "submit_unknown"]
    alert = Alert.objects.get(key="trading.submit_unknown.paper")
    assert (alert.severity, order.client_order_id in alert.message) == ("warning", True)


def test_refresh_of_an_unknown_outcome_finds_the_order_the_broker_got(
    make_order: MakeOrder, lenient_broker: ScriptedBroker, clock: ManualClock, sleeps: Sleeps
) -> None:
    broker = lenient_broker
    order = make_order()
    broker.script("place_order", Fault.AFTER, Fault.BEFORE, Fault.BEFORE)
    broker.script("get_order_by_client_id", *[Fault.BEFORE] * SUBMIT_ATTEMPTS)
    order = place(order, broker, clock, sleeps)
    assert order.status == OrderStatus.PENDING
    broker.fill(order.client_order_id, D(10), D("101.40"))

    clock.advance(SUBMIT_GRACE + timedelta(seconds=1))
    order = order_refresh(order=order, broker=broker, clock=clock)

    assert (order.status, order.filled_quantity) == (OrderStatus.FILLED, D(10))
    assert len(broker.orders_for(order.client_order_id)) == 1
    assert broker.place_calls[order.client_order_id] == 1
    assert Position.objects.get(strategy=order.strategy).quantity == D(10)


def test_refresh_of_an_unknown_outcome_waits_out_the_grace_then_rejects(
    make_order: MakeOrder, broker: ScriptedBroker, clock: ManualClock, sleeps: Sleeps
) -> None:
    order = make_order()
    broker.script("place_order", *[Fault.BEFORE] * SUBMIT_ATTEMPTS)
    order = place(order, broker, clock, sleeps)

    clock.advance(SUBMIT_GRACE - timedelta(seconds=1))
    assert order_refresh(order=order, broker=broker, clock=clock).status == OrderStatus.PENDING
    clock.advance(timedelta(seconds=1))
    order = order_refresh(order=order, broker=broker, clock=clock)

    assert order.status == OrderStatus.REJECTED
    assert order.reject_reason.startswith(NEVER_RECEIVED)
    assert broker.place_calls[order.client_order_id] == 0  # never sent late
    assert broker.orders_for(order.client_order_id) == []


# --- restart --------------------------------------------------------------------------------


class ProcessDied(BaseException):
    """The submitting process ends here (nothing after it runs, no handler catches it)."""


def _die(**kwargs: object) -> Order:
    raise ProcessDied


@pytest.mark.parametrize("meanwhile", ["nothing", "filled"])
def test_after_a_restart_reconciliation_finds_an_order_whose_ack_was_never_applied(
    make_order: MakeOrder,
    lenient_broker: ScriptedBroker,
    clock: ManualClock,
    sleeps: Sleeps,
    monkeypatch: pytest.MonkeyPatch,
    meanwhile: str,
) -> None:
    broker = lenient_broker
    order = make_order()
    # The broker stores the order and answers; the process dies before applying the answer.
    with monkeypatch.context() as patched:
        patched.setattr(order_service, "order_apply_report", _die)
        with pytest.raises(ProcessDied):
            place(order, broker, clock, sleeps)
    order.refresh_from_db()
    assert (order.status, order.broker_order_id) == (OrderStatus.PENDING, "")
    assert order.submit_started_at is not None
    if meanwhile == "filled":
        broker.fill(order.client_order_id, D(10), D("101.25"))

    forget_process_reconciliation()  # a fresh process
    clock.advance(timedelta(minutes=5))
    run = reconcile(mode="paper", broker=broker, clock=clock)

    order.refresh_from_db()
    expected = OrderStatus.FILLED if meanwhile == "filled" else OrderStatus.SUBMITTED
    assert order.status == expected
    assert order.broker_order_id == broker.order(order.client_order_id).broker_order_id
    assert len(broker.orders_for(order.client_order_id)) == 1
    assert broker.place_calls[order.client_order_id] == 1
    (repaired,) = run.repaired
    assert (repaired["client_order_id"], repaired["from"], repaired["to"]) == (
        order.client_order_id,
        "pending",
        expected.value,
    )
    assert D(repaired["filled"]) == order.filled_quantity
    assert (run.matched, run.discrepancies) == (True, [])
    assert reconciled_in_process("paper")


def test_after_a_restart_an_order_that_never_reached_the_broker_is_rejected_not_sent(
    make_order: MakeOrder,
    broker: ScriptedBroker,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order = make_order()
    with monkeypatch.context() as patched:  # the process dies in the middle of the broker call
        patched.setattr(order_service, "_send", _die_send)
        with pytest.raises(ProcessDied):
            order_place(order=order, broker=broker, risk=approve_at(), clock=clock)

    forget_process_reconciliation()
    clock.advance(SUBMIT_GRACE)
    reconcile(mode="paper", broker=broker, clock=clock)

    order.refresh_from_db()
    assert order.status == OrderStatus.REJECTED
    assert order.reject_reason.startswith(NEVER_RECEIVED)
    assert broker.place_calls[order.client_order_id] == 0


def _die_send(*args: object) -> Order:
    raise ProcessDied


# --- cancelling -----------------------------------------------------------------------------


def test_cancel_of_an_order_never_sent_is_local(
    make_order: MakeOrder, broker: ScriptedBroker, clock: ManualClock
) -> None:
    order = make_order()

    order = order_cancel(order=order, broker=broker, clock=clock, reason="operator")

    assert order.status == OrderStatus.CANCELLED
    assert broker.calls == []
    event = OrderEvent.objects.filter(order=order).last()
    assert event is not None
    assert (event.event, event.from_status, event.details) == (
        "cancel",
        "pending",
        {"reason": "operator"},
    )


def test_cancel_of_a_sent_order_goes_through_the_broker(
    make_order: MakeOrder, broker: ScriptedBroker, clock: ManualClock, sleeps: Sleeps
) -> None:
    order = place(make_order(), broker, clock, sleeps)
    clock.advance(timedelta(seconds=5))

    order = order_cancel(order=order, broker=broker, clock=clock)

    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    assert order.cancel_requested_at == clock.now()
    assert broker.order(order.client_order_id).status is BS.CANCELLED
    assert events(order)[-2:] == ["cancel_requested", "cancel"]


def test_cancel_after_a_partial_fill_keeps_the_filled_part(
    make_order: MakeOrder, broker: ScriptedBroker, clock: ManualClock, sleeps: Sleeps
) -> None:
    order = place(make_order(), broker, clock, sleeps)
    broker.fill(order.client_order_id, D(4), D(100))

    order = order_cancel(order=order, broker=broker, clock=clock)

    assert (order.status, order.filled_quantity) == (OrderStatus.CANCELLED, D(4))
    assert Position.objects.get(strategy=order.strategy).quantity == D(4)


def test_cancel_racing_a_fill_ends_filled(
    make_order: MakeOrder, broker: ScriptedBroker, clock: ManualClock, sleeps: Sleeps
) -> None:
    order = place(make_order(), broker, clock, sleeps)
    broker.fill(order.client_order_id, D(10), D(100))  # filled before our cancel arrives

    order = order_cancel(order=order, broker=broker, clock=clock)

    assert (order.status, order.filled_quantity) == (OrderStatus.FILLED, D(10))


def test_cancel_of_a_filled_order_changes_nothing(
    make_order: MakeOrder, broker: ScriptedBroker, clock: ManualClock, sleeps: Sleeps
) -> None:
    order = place(make_order(), broker, clock, sleeps)
    broker.fill(order.client_order_id, D(10), D(100))
    order = order_refresh(order=order, broker=broker, clock=clock)
    assert order.status == OrderStatus.FILLED
    calls = list(broker.calls)
    count = OrderEvent.objects.filter(order=order).count()

    order = order_cancel(order=order, broker=broker, clock=clock)

    assert order.status == OrderStatus.FILLED
    assert broker.calls == calls
    assert OrderEvent.objects.filter(order=order).count() == count


def test_cancel_of_an_order_whose_ack_was_lost_finds_it_and_cancels_it(
    make_order: MakeOrder, broker: ScriptedBroker, clock: ManualClock, sleeps: Sleeps
) -> None:
    order = make_order()
    broker.script("place_order", Fault.AFTER, Fault.BEFORE, Fault.BEFORE)
    broker.script("get_order_by_client_id", *[Fault.BEFORE] * SUBMIT_ATTEMPTS)
    order = place(order, broker, clock, sleeps)
    assert order.status == OrderStatus.PENDING

    order = order_cancel(order=order, broker=broker, clock=clock)

    assert order.status == OrderStatus.CANCELLED
    assert broker.order(order.client_order_id).status is BS.CANCELLED


def test_cancel_while_the_submission_may_still_land_only_records_the_request(
    make_order: MakeOrder, broker: ScriptedBroker, clock: ManualClock, sleeps: Sleeps
) -> None:
    order = make_order()
    broker.script("place_order", *[Fault.BEFORE] * SUBMIT_ATTEMPTS)
    order = place(order, broker, clock, sleeps)

    order = order_cancel(order=order, broker=broker, clock=clock)

    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING
    assert order.cancel_requested_at == clock.now()
    assert "cancel_order" not in broker.calls


# --- property: faults in any order never place an order twice ------------------------------

place_faults = st.lists(st.sampled_from([None, Fault.BEFORE, Fault.AFTER, Fault.FINAL]), max_size=4)
read_faults = st.lists(st.sampled_from([None, Fault.BEFORE]), max_size=6)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    unique=st.booleans(),
    on_place=place_faults,
    on_lookup=read_faults,
    on_status=read_faults,
    fill=st.booleans(),
    cancel=st.booleans(),
)
def test_faults_in_any_order_never_place_an_order_twice(
    strategy: Strategy,
    unique: bool,
    on_place: list[Fault | None],
    on_lookup: list[Fault | None],
    on_status: list[Fault | None],
    fill: bool,
    cancel: bool,
) -> None:
    """Whatever fails when, the broker ends with at most one order per client_order_id, and
    our order agrees with it once the broker answers again: rejected or cancelled locally only
    if the broker holds nothing, else in the broker's state.

    A faithful broker refuses a duplicate client_order_id, and the order path counts on that
    when a lookup fails too (it resends). A broker that stores duplicates (``unique=False``)
    gets working lookups: then the order path alone must never send twice.
    """
    with rolled_back():
        clock = ManualClock(START)
        broker = ScriptedBroker(clock=clock, unique_client_ids=unique)
        broker.script("place_order", *on_place)
        broker.script("get_order_by_client_id", *(on_lookup if unique else []))
        broker.script("get_order_status", *on_status)
        order = order_create(
            strategy=strategy,
            mode="paper",
            broker=broker.name,
            symbol="SPY",
            side="buy",
            quantity=D(10),
            opening=True,
            clock=clock,
        )

        order = order_place(
            order=order, broker=broker, risk=approve_at(), clock=clock, sleep=lambda s: None
        )
        held = broker.orders_for(order.client_order_id)
        assert len(held) <= 1
        assert_agrees(order, held, settled=False)

        if fill and held:
            broker.fill(order.client_order_id, D(10), D(100))
        if cancel:
            _attempt(lambda: order_cancel(order=order, broker=broker, clock=clock))
        clock.advance(SUBMIT_GRACE)
        for _ in range(8):  # the poller, until the scripted faults run out
            _attempt(lambda: order_refresh(order=order, broker=broker, clock=clock))
        order.refresh_from_db()
        held = broker.orders_for(order.client_order_id)
        assert len(held) <= 1
        assert_agrees(order, held, settled=True)


def _attempt(action: Callable[[], object]) -> None:
    with contextlib.suppress(RetryableBrokerError):  # down for this call; the next poll retries
        action()


def assert_agrees(order: Order, held: list[BrokerOrder], *, settled: bool) -> None:
    order.refresh_from_db()
    if not held:
        assert order.status in (OrderStatus.PENDING, OrderStatus.REJECTED, OrderStatus.CANCELLED)
        assert order.filled_quantity == 0
        if settled:
            assert order.status != OrderStatus.PENDING
        return
    (broker_order,) = held
    if order.status == OrderStatus.PENDING and not settled:
        return  # outcome unknown: the poller looks it up
    assert order.status == REPORTED[broker_order.status]
    assert order.filled_quantity == broker_order.filled_quantity

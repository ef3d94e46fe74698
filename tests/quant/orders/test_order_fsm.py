"""The order state machine (every status x event pair) and position arithmetic (Django-free)."""

from __future__ import annotations

import itertools
from decimal import ROUND_DOWN, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant.orders.fsm import (
    OPEN_STATUSES,
    TRANSITIONS,
    InvalidTransition,
    OrderEventType,
    OrderStatus,
    transition,
)
from quant.orders.positions import PositionBook, fill_increment

D = Decimal
S, E = OrderStatus, OrderEventType

# The reviewed table, written out independently of trading/core/fsm.py: a change to the product
# table has to be made here as well, on purpose.
EXPECTED: dict[tuple[OrderStatus, OrderEventType], OrderStatus] = {
    (S.PENDING, E.RISK_REJECT): S.REJECTED,
    (S.PENDING, E.SUBMIT_ACK): S.SUBMITTED,
    (S.PENDING, E.BROKER_REJECT): S.REJECTED,
    (S.PENDING, E.CANCEL): S.CANCELLED,
    (S.PENDING, E.PARTIAL_FILL): S.PARTIALLY_FILLED,  # ack lost, the lookup shows fills
    (S.PENDING, E.FILL): S.FILLED,
    (S.PENDING, E.EXPIRE): S.EXPIRED,
    (S.SUBMITTED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.SUBMITTED, E.FILL): S.FILLED,
    (S.SUBMITTED, E.BROKER_REJECT): S.REJECTED,
    (S.SUBMITTED, E.CANCEL): S.CANCELLED,
    (S.SUBMITTED, E.EXPIRE): S.EXPIRED,
    (S.PARTIALLY_FILLED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, E.FILL): S.FILLED,
    (S.PARTIALLY_FILLED, E.CANCEL): S.CANCELLED,
    (S.PARTIALLY_FILLED, E.EXPIRE): S.EXPIRED,
}
ALL_PAIRS = list(itertools.product(OrderStatus, OrderEventType))
TERMINAL = [s for s in OrderStatus if s not in (S.PENDING, S.SUBMITTED, S.PARTIALLY_FILLED)]


# --- the state machine ----------------------------------------------------------------------


@pytest.mark.parametrize(("status", "event"), ALL_PAIRS, ids=lambda v: v.value)
def test_every_status_event_pair_follows_the_table(
    status: OrderStatus, event: OrderEventType
) -> None:
    assert ((status, event) in TRANSITIONS) == ((status, event) in EXPECTED)
    if (status, event) in EXPECTED:
        assert transition(status, event) is EXPECTED[(status, event)]
        assert transition(status, event) is TRANSITIONS[(status, event)]
        assert transition(status.value, event.value) is EXPECTED[(status, event)]
    else:
        with pytest.raises(InvalidTransition) as raised:
            transition(status, event)
        assert (raised.value.status, raised.value.event) == (status, event)
        assert repr(status.value) in str(raised.value)
        assert repr(event.value) in str(raised.value)


def test_the_table_names_only_known_statuses_and_events() -> None:
    for (status, event), target in TRANSITIONS.items():
        assert isinstance(status, OrderStatus)
        assert isinstance(event, OrderEventType)
        assert isinstance(target, OrderStatus)


@pytest.mark.parametrize("status", TERMINAL, ids=lambda s: s.value)
def test_terminal_status_accepts_no_event(status: OrderStatus) -> None:
    for event in OrderEventType:
        with pytest.raises(InvalidTransition):
            transition(status, event)


def test_open_and_terminal_statuses() -> None:
    assert {s for s in OrderStatus if s.is_open} == {S.PENDING, S.SUBMITTED, S.PARTIALLY_FILLED}
    assert {s for s in OrderStatus if s.is_terminal} == {
        S.FILLED,
        S.REJECTED,
        S.CANCELLED,
        S.EXPIRED,
    }
    assert set(OPEN_STATUSES) == {s for s in OrderStatus if s.is_open}
    for status in OrderStatus:
        assert status.is_open is not status.is_terminal


def test_every_terminal_status_is_reachable_and_every_open_one_can_end() -> None:
    reachable = {S.PENDING}
    frontier = [S.PENDING]
    while frontier:
        status = frontier.pop()
        for (source, _event), target in TRANSITIONS.items():
            if source is status and target not in reachable:
                reachable.add(target)
                frontier.append(target)
    assert reachable == set(OrderStatus)
    for status in OPEN_STATUSES:
        targets = {t for (s, _e), t in TRANSITIONS.items() if s is status}
        assert any(t.is_terminal for t in targets), status


def test_unknown_status_or_event_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        transition("open", E.FILL)
    with pytest.raises(ValueError):
        transition(S.PENDING, "teleport")


@given(st.lists(st.sampled_from(list(OrderEventType)), max_size=12))
def test_random_event_streams_never_leave_a_terminal_status(events: list[OrderEventType]) -> None:
    status, ended_as = S.PENDING, None
    for event in events:
        try:
            status = transition(status, event)
        except InvalidTransition:
            assert (status, event) not in TRANSITIONS
        if ended_as is not None:
            assert status is ended_as
        elif status.is_terminal:
            ended_as = status


# --- position arithmetic --------------------------------------------------------------------


def book(*fills: tuple[str, str, str] | tuple[str, str, str, str]) -> PositionBook:
    """Apply (side, quantity, price[, commission]) fills to a flat position."""
    position = PositionBook()
    for fill in fills:
        side, quantity, price = fill[0], D(fill[1]), D(fill[2])
        commission = D(fill[3]) if len(fill) == 4 else D(0)
        position = position.apply(side=side, quantity=quantity, price=price, commission=commission)
    return position


def test_open_long() -> None:
    assert book(("buy", "10", "100")) == PositionBook(D(10), D(100), D(0))


def test_add_to_long_averages_the_price() -> None:
    assert book(("buy", "10", "100"), ("buy", "10", "110")) == PositionBook(D(20), D(105), D(0))


def test_average_price_is_rounded_to_eight_places() -> None:
    # (1 x 100 + 2 x 101) / 3 = 100.666…
    assert book(("buy", "1", "100"), ("buy", "2", "101")).avg_price == D("100.66666667")


def test_reduce_long_realizes_pnl_and_keeps_the_average() -> None:
    position = book(("buy", "10", "100"), ("buy", "10", "110"), ("sell", "5", "115"))
    assert position == PositionBook(D(15), D(105), D(50))  # 5 x (115 - 105)


def test_close_long_goes_flat() -> None:
    position = book(
        ("buy", "10", "100"), ("buy", "10", "110"), ("sell", "5", "115"), ("sell", "15", "100")
    )
    assert position == PositionBook(D(0), D(0), D(-25))  # 50 + 15 x (100 - 105)


def test_flip_long_to_short_through_zero() -> None:
    position = book(("buy", "10", "100"), ("sell", "15", "110"))
    # 10 close at +10 each; the other 5 open a short at the fill price
    assert position == PositionBook(D(-5), D(110), D(100))


def test_short_side() -> None:
    position = book(("sell", "10", "50"))
    assert position == PositionBook(D(-10), D(50), D(0))
    position = position.apply(side="buy", quantity=D(4), price=D(45))
    assert position == PositionBook(D(-6), D(50), D(20))  # covered 4 at 5 below the entry
    position = position.apply(side="sell", quantity=D(6), price=D(52))
    assert position == PositionBook(D(-12), D(51), D(20))  # (6 x 50 + 6 x 52) / 12
    position = position.apply(side="buy", quantity=D(12), price=D(50))
    assert position == PositionBook(D(0), D(0), D(32))  # + 12 x (51 - 50)


def test_flip_short_to_long_through_zero() -> None:
    position = book(("sell", "5", "110"), ("buy", "8", "100"))
    assert position == PositionBook(D(3), D(100), D(50))


def test_commission_is_charged_to_realized_pnl() -> None:
    position = book(("buy", "10", "100", "1.25"))
    assert position == PositionBook(D(10), D(100), D("-1.25"))
    position = position.apply(side="sell", quantity=D(10), price=D(101), commission=D("1.25"))
    assert position == PositionBook(D(0), D(0), D("7.50"))  # 10 - 2.50


def test_fractional_quantities() -> None:
    position = book(("buy", "0.5", "200.10"), ("sell", "0.25", "201.30"))
    assert position == PositionBook(D("0.25"), D("200.10"), D("0.3"))


@pytest.mark.parametrize("quantity", ["0", "-1"])
def test_fill_quantity_must_be_positive(quantity: str) -> None:
    with pytest.raises(ValueError, match="positive"):
        PositionBook().apply(side="buy", quantity=D(quantity), price=D(100))


def test_fill_increment_first_fill() -> None:
    assert fill_increment(
        filled_before=D(0), avg_before=None, filled_after=D(4), avg_after=D(100)
    ) == (D(4), D(100))


def test_fill_increment_derives_the_price_of_the_new_part() -> None:
    # 4 @ 100 then cumulative 10 @ 101.2: the 6 new shares cost (1012 - 400) / 6 = 102
    assert fill_increment(
        filled_before=D(4), avg_before=D(100), filled_after=D(10), avg_after=D("101.2")
    ) == (D(6), D(102))


def test_fill_increment_price_is_rounded_to_eight_places() -> None:
    # 3 @ 100 then cumulative 4 @ 100.33333333: (401.33333332 - 300) / 1
    assert fill_increment(
        filled_before=D(3), avg_before=D(100), filled_after=D(4), avg_after=D("100.33333333")
    ) == (D(1), D("101.33333332"))
    _, price = fill_increment(  # type: ignore[misc]
        filled_before=D(1), avg_before=D(100), filled_after=D(4), avg_after=D("100.5")
    )
    assert price == D("100.66666667")  # (402 - 100) / 3


@pytest.mark.parametrize("filled_after", ["10", "4"])
def test_fill_increment_of_a_repeated_or_older_report_is_none(filled_after: str) -> None:
    assert (
        fill_increment(
            filled_before=D(10), avg_before=D(101), filled_after=D(filled_after), avg_after=D(99)
        )
        is None
    )


def test_fill_increment_needs_the_average_price() -> None:
    with pytest.raises(ValueError, match="average price"):
        fill_increment(filled_before=D(0), avg_before=None, filled_after=D(1), avg_after=None)


# --- position properties --------------------------------------------------------------------

quantities = st.decimals(min_value=D("0.0001"), max_value=D(1000), places=4)
prices = st.decimals(min_value=D("0.01"), max_value=D(10_000), places=2)
commissions = st.decimals(min_value=D(0), max_value=D(5), places=2)
fills = st.tuples(st.sampled_from(["buy", "sell"]), quantities, prices, commissions)


@settings(max_examples=300)
@given(st.lists(fills, max_size=30))
def test_position_quantity_is_the_signed_sum_of_fills(
    sequence: list[tuple[str, Decimal, Decimal, Decimal]],
) -> None:
    position = PositionBook()
    for side, quantity, price, commission in sequence:
        position = position.apply(side=side, quantity=quantity, price=price, commission=commission)
        assert (position.quantity == 0) == (position.avg_price == 0)
        assert position.avg_price >= 0
    assert position.quantity == sum(
        (q if side == "buy" else -q for side, q, _p, _c in sequence), D(0)
    )


def _round_trip(
    direction: str,
    entries: list[tuple[Decimal, Decimal]],
    exit_prices: list[Decimal],
    commission: Decimal,
) -> tuple[PositionBook, list[tuple[Decimal, Decimal]]]:
    """Open with ``entries`` and close the whole quantity in len(exit_prices) fills."""
    opening, closing = ("buy", "sell") if direction == "long" else ("sell", "buy")
    total = sum((q for q, _ in entries), D(0))
    share = (total / len(exit_prices)).quantize(D("0.0001"), rounding=ROUND_DOWN)
    if share == 0:
        exit_prices = exit_prices[-1:]
    exits = [(share, p) for p in exit_prices[:-1]]
    exits.append((total - sum((q for q, _ in exits), D(0)), exit_prices[-1]))
    position = PositionBook()
    for quantity, price in entries:
        position = position.apply(
            side=opening, quantity=quantity, price=price, commission=commission
        )
    for quantity, price in exits:
        position = position.apply(
            side=closing, quantity=quantity, price=price, commission=commission
        )
    return position, exits


@settings(max_examples=200)
@given(
    st.sampled_from(["long", "short"]),
    quantities,
    prices,
    st.lists(prices, min_size=1, max_size=4),
    commissions,
)
def test_round_trip_from_one_entry_realizes_the_hand_formula(
    direction: str,
    quantity: Decimal,
    entry: Decimal,
    exit_prices: list[Decimal],
    commission: Decimal,
) -> None:
    position, exits = _round_trip(direction, [(quantity, entry)], exit_prices, commission)
    sign = 1 if direction == "long" else -1
    expected = sign * sum(((p - entry) * q for q, p in exits), D(0))
    expected -= commission * (1 + len(exits))
    assert position == PositionBook(D(0), D(0), expected)


@settings(max_examples=200)
@given(
    st.sampled_from(["long", "short"]),
    st.lists(st.tuples(quantities, prices), min_size=1, max_size=5),
    st.lists(prices, min_size=1, max_size=4),
    commissions,
)
def test_round_trip_realizes_exit_value_minus_entry_value(
    direction: str,
    entries: list[tuple[Decimal, Decimal]],
    exit_prices: list[Decimal],
    commission: Decimal,
) -> None:
    position, exits = _round_trip(direction, entries, exit_prices, commission)
    sign = 1 if direction == "long" else -1
    gross = sum((q * p for q, p in exits), D(0)) - sum((q * p for q, p in entries), D(0))
    expected = sign * gross - commission * (len(entries) + len(exits))
    assert position.quantity == 0
    # each entry rounds the average to 8 places: at most half a unit per share and entry
    total = sum((q for q, _ in entries), D(0))
    assert abs(position.realized_pnl - expected) <= total * D("0.000000005") * len(entries)

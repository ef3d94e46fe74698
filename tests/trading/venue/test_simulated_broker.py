"""SimulatedBroker: the broker interface's promises on the simulated venue.

Unless a test says otherwise: $100,000 of cash, $1 per fill, 10 bps of slippage, market orders
fill on the close of the latest finished bar, bars 0..2 of SPY have finished (the clock is at
the end of bar 2).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.db import OperationalError

from quant.backtest import BacktestConfig, FillAt
from quant.backtest.simulator import ExecutionSimulator
from quant.clock import ManualClock
from quant.strategies.base import OrderIntent, OrderRequest, PriceBar, Side
from tests.trading.venue.conftest import MakeBroker, add_bars, bar_end, bar_start, run, ticket
from trading.brokers.base import (
    BrokerOrderStatus,
    FinalBrokerError,
    OrderNotFoundError,
    RetryableBrokerError,
)
from trading.venue.models import VenueAccount, VenueFill, VenueOrder
from trading.venue.prices import DatabasePriceSource

pytestmark = pytest.mark.django_db

D = Decimal
SECOND = timedelta(seconds=1)


@pytest.fixture
def spy() -> None:
    add_bars("SPY", [100.0, 101.0, 102.0])


# --- market orders: the backtest's price, commission and timing ---------------------------


@pytest.mark.usefixtures("spy")
@pytest.mark.parametrize(("side", "sign"), [("buy", 1), ("sell", -1)])
def test_market_order_fills_on_the_latest_close_at_the_backtest_price(
    side: str, sign: int, make_broker: MakeBroker
) -> None:
    broker = make_broker()

    report = run(broker.place_order, ticket(side=side, quantity=10))

    # what the backtest's simulator makes of the same order on the same bar
    sim = ExecutionSimulator(BacktestConfig(), ["SPY"])
    request = OrderRequest("SPY", Side(side), OrderIntent.ENTRY, quantity=10)
    (expected,) = sim.submit(request, 2, bar_start(2), 102.0, 1_000_000.0)
    # and by hand: 102 * (1 +/- 10 / 10000)
    assert expected.price == pytest.approx(102 * (1 + sign * 0.001))
    assert report.status is BrokerOrderStatus.FILLED
    assert report.filled_quantity == 10
    assert report.filled_avg_price == D(str(round(expected.price, 6)))
    assert report.filled_avg_price == D("102") * (1 + sign * D("0.001"))
    assert report.commission == D("1.00")
    account = run(broker.get_account)
    assert account.cash == D("100000") - sign * 10 * report.filled_avg_price - D("1.00")


@pytest.mark.usefixtures("spy")
def test_no_fill_before_the_latency_has_elapsed(
    make_broker: MakeBroker, clock: ManualClock
) -> None:
    broker = make_broker(latency=timedelta(seconds=5))
    clock.set(bar_end(2) - 2 * SECOND)  # bar 2 has not finished yet: bar 1 is the latest

    placed = run(broker.place_order, ticket())
    clock.advance(4 * SECOND)  # bar 2 has finished, the order has not arrived yet
    waiting = run(broker.get_order_status, placed.broker_order_id)
    clock.advance(SECOND)
    arrived = run(broker.get_order_status, placed.broker_order_id)

    assert placed.status is BrokerOrderStatus.NEW and placed.filled_quantity == 0
    assert waiting.status is BrokerOrderStatus.NEW and waiting.filled_quantity == 0
    assert arrived.status is BrokerOrderStatus.FILLED
    # it fills on the latest bar finished when it *arrived* (bar 2), not when it was sent
    assert arrived.filled_avg_price == D("102.102")
    assert arrived.updated_at == placed.submitted_at + timedelta(seconds=5)  # type: ignore[operator]


@pytest.mark.usefixtures("spy")
def test_an_order_cancelled_before_it_arrives_never_fills(
    make_broker: MakeBroker, clock: ManualClock
) -> None:
    broker = make_broker(latency=timedelta(seconds=5))
    placed = run(broker.place_order, ticket())

    assert run(broker.cancel_order, placed.broker_order_id) is True
    clock.advance(timedelta(minutes=5))
    report = run(broker.get_order_status, placed.broker_order_id)

    assert report.status is BrokerOrderStatus.CANCELLED and report.filled_quantity == 0
    assert not VenueFill.objects.exists() and run(broker.get_positions) == []


@pytest.mark.usefixtures("spy")
def test_next_open_market_order_waits_for_the_next_bar(
    make_broker: MakeBroker, clock: ManualClock
) -> None:
    broker = make_broker(config=BacktestConfig(fill_at=FillAt.NEXT_OPEN))

    placed = run(broker.place_order, ticket())
    add_bars("SPY", [(103.0, 104.0, 102.5, 103.5, 1_000_000)], first=3)
    clock.set(bar_end(3) - SECOND)  # bar 3 is still forming: the venue cannot see it
    forming = run(broker.get_order_status, placed.broker_order_id)
    clock.set(bar_end(3))
    filled = run(broker.get_order_status, placed.broker_order_id)

    assert (placed.status, forming.status) == (BrokerOrderStatus.NEW, BrokerOrderStatus.NEW)
    assert filled.status is BrokerOrderStatus.FILLED
    assert filled.filled_avg_price == D("103.103")  # bar 3's open + 10 bps


# --- partial fills, limits and stops -------------------------------------------------------


def test_partial_fills_under_participation_over_several_bars(
    make_broker: MakeBroker, clock: ManualClock
) -> None:
    add_bars("SPY", [(100, 100, 100, 100, 1_000)] * 3 + [(101, 101, 101, 101, 500)] * 3)
    broker = make_broker(config=BacktestConfig(max_volume_participation=D("0.1")))

    placed = run(broker.place_order, ticket(quantity=250))
    reports = []
    for i in (3, 4, 5):
        clock.set(bar_end(i))
        reports.append(run(broker.get_order_status, placed.broker_order_id))

    # 10% of 1,000 on bar 2, then 10% of 500 on each of bars 3, 4 and 5 (50 left after bar 4)
    assert placed.status is BrokerOrderStatus.PARTIALLY_FILLED
    assert placed.filled_quantity == 100 and placed.filled_avg_price == D("100.1")
    assert [r.filled_quantity for r in reports] == [150, 200, 250]
    assert [r.status for r in reports] == [BrokerOrderStatus.PARTIALLY_FILLED] * 2 + [
        BrokerOrderStatus.FILLED
    ]
    assert reports[-1].commission == D("4.00")  # one commission per fill, as in a backtest
    # (100 * 100.1 + 150 * 101.101) / 250
    assert reports[-1].filled_avg_price == D("100.7006")
    assert [f.quantity for f in VenueFill.objects.order_by("ts")] == [100, 50, 50, 50]


def test_limit_order_fills_at_the_gap_open_or_at_its_limit(
    make_broker: MakeBroker, clock: ManualClock
) -> None:
    add_bars("SPY", [100.0, 100.0, 100.0, (97.0, 98.0, 96.0, 97.5, 1e6)])
    add_bars("QQQ", [100.0, 100.0, 100.0, (100.0, 100.5, 98.0, 99.0, 1e6)])
    broker = make_broker()

    gap = run(broker.place_order, ticket("gap", order_type="limit", limit="99"))
    touch = run(broker.place_order, ticket("touch", symbol="QQQ", order_type="limit", limit="99"))
    clock.set(bar_end(3))
    gap = run(broker.get_order_status, gap.broker_order_id)
    touch = run(broker.get_order_status, touch.broker_order_id)

    assert gap.filled_avg_price == D("97")  # opened below the limit: the open, no slippage
    assert touch.filled_avg_price == D("99")  # the low reached the limit: the limit
    assert gap.status is touch.status is BrokerOrderStatus.FILLED


def test_limit_order_is_not_filled_on_the_bar_it_was_placed_after(
    make_broker: MakeBroker,
) -> None:
    add_bars("SPY", [100.0, 100.0, (100.0, 100.0, 95.0, 100.0, 1e6)])
    broker = make_broker()

    report = run(broker.place_order, ticket(order_type="limit", limit="96"))

    assert report.status is BrokerOrderStatus.NEW  # bar 2 dipped to 95 before it existed


def test_stop_order_fills_through_a_gap_and_works_as_market_once_triggered(
    make_broker: MakeBroker, clock: ManualClock
) -> None:
    add_bars(
        "SPY",
        [100.0, 100.0, 100.0, (103.0, 104.0, 102.0, 103.5, 1_000), (104, 105, 103, 104.5, 1_000)],
    )
    broker = make_broker(config=BacktestConfig(max_volume_participation=D("0.1")))

    placed = run(broker.place_order, ticket(order_type="stop", stop="101", quantity=150))
    clock.set(bar_end(3))
    gapped = run(broker.get_order_status, placed.broker_order_id)
    clock.set(bar_end(4))
    rest = run(broker.get_order_status, placed.broker_order_id)

    assert placed.status is BrokerOrderStatus.NEW
    assert gapped.filled_quantity == 100  # the gap's open 103 + 10 bps, 10% of the volume
    assert gapped.filled_avg_price == D("103.103")
    # triggered: the rest works as a market order, on bar 4's close 104.5 + 10 bps
    assert rest.status is BrokerOrderStatus.FILLED
    assert VenueFill.objects.order_by("ts").last().price == D("104.6045")  # type: ignore[union-attr]
    assert VenueOrder.objects.get().triggered


# --- cancel -------------------------------------------------------------------------------


def test_cancel_an_open_order_keeps_its_filled_part(
    make_broker: MakeBroker, clock: ManualClock
) -> None:
    add_bars("SPY", [(100, 100, 100, 100, 1_000)] * 5)
    broker = make_broker(config=BacktestConfig(max_volume_participation=D("0.1")))
    placed = run(broker.place_order, ticket(quantity=300))
    clock.set(bar_end(3))

    assert run(broker.cancel_order, placed.broker_order_id) is True
    clock.set(bar_end(4))
    report = run(broker.get_order_status, placed.broker_order_id)

    assert report.status is BrokerOrderStatus.CANCELLED
    assert report.filled_quantity == 200  # bars 2 and 3; nothing after the cancel
    assert report.updated_at == bar_end(3)
    assert run(broker.get_positions)[0].quantity == 200
    assert run(broker.list_open_orders) == []


@pytest.mark.usefixtures("spy")
def test_cancel_a_done_order_is_refused_and_an_unknown_one_is_not_found(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker()
    filled = run(broker.place_order, ticket())
    resting = run(broker.place_order, ticket("limit", order_type="limit", limit="50"))
    assert run(broker.cancel_order, resting.broker_order_id) is True

    assert run(broker.cancel_order, filled.broker_order_id) is False
    assert run(broker.cancel_order, resting.broker_order_id) is False
    with pytest.raises(OrderNotFoundError):
        run(broker.cancel_order, "00000000-0000-0000-0000-000000000000")
    with pytest.raises(OrderNotFoundError):
        run(broker.get_order_status, "00000000-0000-0000-0000-000000000000")


# --- refusals -----------------------------------------------------------------------------


@pytest.mark.usefixtures("spy")
def test_duplicate_client_order_id_is_refused_and_stores_no_second_order(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker()
    first = run(broker.place_order, ticket("dup-1"))

    with pytest.raises(FinalBrokerError, match="duplicate client_order_id 'dup-1'"):
        run(broker.place_order, ticket("dup-1", side="sell", quantity=5))

    assert VenueOrder.objects.count() == 1
    found = run(broker.get_order_by_client_id, "dup-1")
    assert found is not None and found.broker_order_id == first.broker_order_id
    assert found.side == "buy" and found.quantity == 10
    assert run(broker.get_order_by_client_id, "never-sent") is None


@pytest.mark.usefixtures("spy")
def test_a_buy_the_cash_cannot_cover_is_refused(make_broker: MakeBroker) -> None:
    broker = make_broker(starting_cash=D("10000"))

    # 97 x 102.102 + 1 = 9,904.89 fits; 98 x 102.102 + 1 = 10,006.99 does not
    with pytest.raises(FinalBrokerError, match="insufficient buying power"):
        run(broker.place_order, ticket("too-big", quantity=98))
    run(broker.place_order, ticket("fits", quantity=97))

    assert list(VenueOrder.objects.values_list("client_order_id", flat=True)) == ["fits"]


@pytest.mark.usefixtures("spy")
def test_open_buy_orders_hold_buying_power(make_broker: MakeBroker) -> None:
    broker = make_broker(starting_cash=D("10000"))
    run(broker.place_order, ticket("resting", order_type="limit", limit="60", quantity=100))

    account = run(broker.get_account)
    assert account.buying_power == D("10000") - 100 * D("60") - D("1.00")
    # 40 x 102.102 + 1 = 4,085.08 > 3,999
    with pytest.raises(FinalBrokerError, match="insufficient buying power"):
        run(broker.place_order, ticket("more", quantity=40))


@pytest.mark.usefixtures("spy")
def test_unknown_symbol_is_refused_by_name(make_broker: MakeBroker) -> None:
    broker = make_broker()

    with pytest.raises(FinalBrokerError, match="unknown symbol 'NOPE'"):
        run(broker.place_order, ticket(symbol="NOPE"))


@pytest.mark.usefixtures("spy")
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"quantity": "1.5"}, "fractional quantities are not supported"),
        ({"quantity": "0"}, "quantity must be positive"),
        ({"order_type": "limit"}, "a limit order needs a positive limit_price"),
        ({"order_type": "stop", "stop": "-1"}, "a stop order needs a positive stop_price"),
        ({"order_type": "trailing_stop"}, "order type 'trailing_stop' is not supported"),
        ({"side": "short"}, "side must be buy or sell"),
    ],
)
def test_invalid_tickets_are_refused(
    changes: dict[str, str], message: str, make_broker: MakeBroker
) -> None:
    broker = make_broker()

    with pytest.raises(FinalBrokerError, match=message):
        run(broker.place_order, ticket(**changes))
    assert not VenueOrder.objects.exists()


# --- positions and the account -------------------------------------------------------------


@pytest.mark.usefixtures("spy")
def test_short_sale_opens_a_negative_position(make_broker: MakeBroker) -> None:
    broker = make_broker()
    assert broker.capabilities.supports_short

    report = run(broker.place_order, ticket(side="sell", quantity=20))

    (position,) = run(broker.get_positions)
    assert report.filled_avg_price == D("101.898")  # 102 - 10 bps
    assert position.quantity == -20 and position.avg_entry_price == D("101.898")
    assert position.market_value == -20 * D("102")
    account = run(broker.get_account)
    assert account.cash == D("100000") + 20 * D("101.898") - 1
    assert account.equity == account.cash - 20 * D("102")


def test_positions_and_account_follow_fills_and_the_latest_close(
    make_broker: MakeBroker, clock: ManualClock
) -> None:
    add_bars("SPY", [100.0, 100.0, 100.0, 110.0, 120.0])
    add_bars("QQQ", [50.0, 50.0, 50.0, 55.0, 60.0])
    broker = make_broker()
    run(broker.place_order, ticket("spy-1", quantity=10))  # 100.1
    run(broker.place_order, ticket("qqq-1", symbol="QQQ", side="sell", quantity=40))  # 49.95
    clock.set(bar_end(3))
    run(broker.place_order, ticket("spy-2", quantity=10))  # 110.11
    run(broker.place_order, ticket("qqq-2", symbol="QQQ", quantity=40))  # 55.055: flat again
    clock.set(bar_end(4))

    positions = run(broker.get_positions)
    account = run(broker.get_account)

    assert [(p.symbol, p.quantity, p.avg_entry_price) for p in positions] == [
        ("SPY", D(20), D("105.105"))
    ]
    assert positions[0].market_value == 20 * D("120")
    cash = D("100000") - 10 * D("100.1") + 40 * D("49.95") - 10 * D("110.11") - 40 * D("55.055") - 4
    assert account.cash == cash
    assert account.equity == cash + 20 * D("120")
    assert account.buying_power == cash
    assert account.account_id == "paper"
    assert VenueAccount.objects.get().starting_cash == D("100000")


def test_accounts_are_separate_books(make_broker: MakeBroker) -> None:
    add_bars("SPY", [100.0, 100.0, 100.0])
    paper, other = make_broker(), make_broker(account="other", starting_cash=D("5000"))

    run(paper.place_order, ticket("same-id"))
    run(other.place_order, ticket("same-id", quantity=1))  # unique per account only

    assert run(other.get_account).cash == D("5000") - D("100.1") - 1
    assert [p.quantity for p in run(other.get_positions)] == [1]
    assert [p.quantity for p in run(paper.get_positions)] == [10]


# --- asking twice -------------------------------------------------------------------------


def test_asking_twice_advances_nothing_twice(make_broker: MakeBroker, clock: ManualClock) -> None:
    add_bars("SPY", [(100, 100, 100, 100, 1_000)] * 5)
    broker = make_broker(config=BacktestConfig(max_volume_participation=D("0.1")))
    placed = run(broker.place_order, ticket(quantity=500))
    clock.set(bar_end(3))

    first = run(broker.get_order_status, placed.broker_order_id)
    again = [
        run(broker.get_order_status, placed.broker_order_id),
        run(broker.list_open_orders)[0],
    ]
    run(broker.get_positions)
    run(broker.get_account)
    cash, fills = VenueAccount.objects.get().cash, VenueFill.objects.count()
    clock.set(bar_end(4))
    later = run(broker.get_order_status, placed.broker_order_id)

    assert first.filled_quantity == 200 and fills == 2
    assert all(r == first for r in again)
    assert cash == D("100000") - 200 * D("100.1") - 2
    assert later.filled_quantity == 300 and VenueFill.objects.count() == 3


@pytest.mark.usefixtures("spy")
def test_reports_carry_venue_times_and_the_ticket(make_broker: MakeBroker) -> None:
    broker = make_broker()

    report = run(broker.place_order, ticket(order_type="limit", limit="90.5"))

    assert report.submitted_at == report.updated_at == bar_end(2)
    assert (report.order_type, report.limit_price, report.stop_price) == ("limit", D("90.5"), None)
    assert report.client_order_id == "o-1" and len(report.broker_order_id) == 36
    assert run(broker.list_open_orders) == [report]


def test_a_database_that_fails_is_a_retryable_broker_error(make_broker: MakeBroker) -> None:
    class Unreachable(DatabasePriceSource):
        def latest_bar(self, symbol: str, at: datetime | None = None) -> PriceBar | None:
            raise OperationalError("server closed the connection unexpectedly")

    broker = make_broker(prices=Unreachable(clock=ManualClock(bar_end(2))))

    with pytest.raises(RetryableBrokerError, match="database is unavailable"):
        run(broker.place_order, ticket())

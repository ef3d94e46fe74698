"""The order path through the real alpaca-py client against the loopback Alpaca server, with
the faults users meet: rate limits, 5xx, an answer lost after the order was accepted, a reset
connection, duplicated and out-of-order reports, and a worker killed before the
acknowledgement. Invariants: never two broker orders for one client_order_id, positions equal
the sum of fills, filled never exceeds ordered."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from research.models import Strategy
from tests.support.alpaca_trading import AlpacaTradingServer
from tests.trading.factories import account, flat_prices, paper_strategy
from trading.brokers.alpaca import AlpacaBroker
from trading.brokers.base import OrderTicket
from trading.brokers.sync import call
from trading.models import Fill, Order, Position
from trading.services.orders import order_refresh
from trading.services.reconcile import forget_process_reconciliation, reconcile
from trading.services.submit import order_submit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(alpaca_trading_server: AlpacaTradingServer) -> AlpacaTradingServer:
    alpaca_trading_server.set_price("SPY", "100")
    return alpaca_trading_server


@pytest.fixture
def broker(server: AlpacaTradingServer) -> Iterator[AlpacaBroker]:
    forget_process_reconciliation()
    yield AlpacaBroker(
        api_key=server.api_key, secret_key=server.secret_key, url_override=server.url, timeout=0.5
    )
    forget_process_reconciliation()


@pytest.fixture
def strategy() -> Strategy:
    flat_prices("SPY")
    account()
    return paper_strategy()


def buy(strategy: Strategy, broker: AlpacaBroker, qty: str = "10", **kwargs: Any) -> Order:
    return order_submit(
        strategy=strategy,
        mode="paper",
        broker=broker,
        symbol="SPY",
        side="buy",
        quantity=Decimal(qty),
        sleep=lambda _: None,
        **kwargs,
    )


def assert_books_agree(strategy: Strategy, server: AlpacaTradingServer) -> None:
    for order in Order.objects.filter(strategy=strategy):
        assert len(server.orders_for(order.client_order_id)) <= 1
        assert order.filled_quantity <= order.quantity
        fills = Fill.objects.filter(order=order)
        assert sum((f.quantity for f in fills), Decimal(0)) == order.filled_quantity
    position = Position.objects.filter(strategy=strategy, symbol="SPY").first()
    assert (position.quantity if position else 0) == server.position("SPY")


def test_a_market_order_is_filled_and_booked(
    strategy: Strategy, broker: AlpacaBroker, server: AlpacaTradingServer
) -> None:
    order = buy(strategy, broker)

    assert order.status == "filled" and order.avg_fill_price == Decimal("100")
    assert order.broker_order_id == server.orders_for(order.client_order_id)[0].id
    assert_books_agree(strategy, server)


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 429, "retry_after": 0},
        {"status": 500},
        {"status": 503},
        {"reset": True},
    ],
    ids=["429", "500", "503", "reset"],
)
def test_a_refused_attempt_is_retried_once_it_is_known_the_broker_has_nothing(
    strategy: Strategy, broker: AlpacaBroker, server: AlpacaTradingServer, fault: dict[str, Any]
) -> None:
    server.faults.add(path_prefix="/v2/orders", method="POST", times=1, **fault)

    order = buy(strategy, broker)

    assert order.status == "filled"
    assert len(server.orders_for(order.client_order_id)) == 1
    assert order.submit_attempts == 1
    assert_books_agree(strategy, server)


@pytest.mark.parametrize(
    "lost", [{"delay": 1.5}, {"reset": True}, {"status": 504}], ids=["timeout", "reset", "504"]
)
def test_an_answer_lost_after_the_broker_accepted_never_sends_the_order_twice(
    strategy: Strategy, broker: AlpacaBroker, server: AlpacaTradingServer, lost: dict[str, Any]
) -> None:
    server.time_out_after_accept(**lost)

    order = buy(strategy, broker)

    assert len(server.orders_for(order.client_order_id)) == 1
    assert order.status == "filled"
    assert_books_agree(strategy, server)


def test_a_broker_refusal_is_stored_as_the_rejection(
    strategy: Strategy, broker: AlpacaBroker, server: AlpacaTradingServer
) -> None:
    server.faults.add(
        path_prefix="/v2/orders",
        method="POST",
        status=403,
        times=1,
        body={"code": 40310000, "message": "insufficient buying power"},
    )

    order = buy(strategy, broker)

    assert order.status == "rejected"
    assert order.reject_reason == "Broker rejected: Alpaca answered 403: insufficient buying power"
    assert server.orders_for(order.client_order_id) == []


def test_the_risk_gateway_refuses_before_any_broker_call(
    strategy: Strategy, broker: AlpacaBroker, server: AlpacaTradingServer
) -> None:
    order = buy(strategy, broker, qty="2000")

    assert order.status == "rejected" and order.reject_reason == "Max risk exceeded: 4.00% > 2.00%"
    assert not server.requests.filter(method="POST", path="/v2/orders")


def test_duplicated_and_out_of_order_reports_change_nothing(
    strategy: Strategy, broker: AlpacaBroker, server: AlpacaTradingServer
) -> None:
    server.auto_fill = False
    order = buy(strategy, broker, qty="30")
    assert order.status == "submitted"
    broker_id = order.broker_order_id
    server.fill(broker_id, 10, "100")
    order = order_refresh(order=order, broker=broker)
    server.fill(broker_id, 10, "101")
    order = order_refresh(order=order, broker=broker)
    assert order.filled_quantity == 20

    server.serve_stale(broker_id, versions_back=1)  # the 10-filled report again, late
    order = order_refresh(order=order, broker=broker)
    server.serve_duplicate(broker_id)
    order = order_refresh(order=order, broker=broker)

    assert order.filled_quantity == 20 and order.status == "partially_filled"
    assert order.events.filter(event="stale_report").exists()
    server.fill(broker_id, 10, "102")
    order = order_refresh(order=order, broker=broker)
    assert order.status == "filled" and order.avg_fill_price == Decimal("101")
    assert [f.price for f in Fill.objects.filter(order=order).order_by("id")] == [100, 101, 102]
    assert_books_agree(strategy, server)


def test_a_worker_killed_before_the_acknowledgement_is_recovered_on_restart(
    strategy: Strategy, broker: AlpacaBroker, server: AlpacaTradingServer
) -> None:
    reconcile(mode="paper", broker=broker)
    # The worker approved the order and sent it, then died before applying the answer.
    order = Order.objects.create(
        strategy=strategy,
        mode="paper",
        broker=broker.name,
        client_order_id=f"{strategy.pk}-20260101T000000000000-deadbeef",
        symbol="SPY",
        side="buy",
        quantity=Decimal("5"),
        opening=True,
        source="strategy",
        created_at=timezone.now(),
        submit_started_at=timezone.now(),
        submit_attempts=1,
    )
    call(broker.place_order(OrderTicket(order.client_order_id, "SPY", "buy", Decimal("5"))))
    forget_process_reconciliation()  # a new worker process starts

    run = reconcile(mode="paper", broker=broker)

    order.refresh_from_db()
    assert order.status == "filled" and run.matched, run.discrepancies
    assert len(server.orders_for(order.client_order_id)) == 1
    assert_books_agree(strategy, server)


def test_a_position_the_broker_does_not_have_turns_safe_mode_on(
    strategy: Strategy, broker: AlpacaBroker, server: AlpacaTradingServer
) -> None:
    buy(strategy, broker)
    server.set_position("SPY", 0, 0)  # someone closed it outside the platform

    run = reconcile(mode="paper", broker=broker)

    assert not run.matched and run.discrepancies[0]["kind"] == "position"
    entry = buy(strategy, broker)
    assert entry.status == "rejected" and entry.reject_reason.startswith("Safe mode")
    server.set_position("SPY", 10, 100)
    assert reconcile(mode="paper", broker=broker).matched
    assert buy(strategy, broker).status == "filled"

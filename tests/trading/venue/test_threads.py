"""The venue from other threads and event loops, with real commits (PostgreSQL).

Celery tasks and management commands call the async broker with ``asyncio.run`` from sync
code, outside ``transaction.atomic``: what the venue did must be committed when the call
returns. Two processes (here: two threads, each with its own connection) asking at once must
never fill the same bar twice: the account row lock serialises them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from quant.backtest import BacktestConfig
from quant.clock import ManualClock
from quant.strategies.base import PriceBar
from tests.trading.venue.conftest import MakeBroker, add_bars, bar_end, ticket
from trading.brokers.base import BrokerAccount, BrokerOrderStatus
from trading.venue import services
from trading.venue.models import VenueAccount, VenueFill, VenueOrder
from trading.venue.prices import DatabasePriceSource

# Only these apps' tables are emptied after each test (fast teardown).
pytestmark = [
    pytest.mark.django_db(transaction=True, available_apps=["marketdata", "trading.venue"]),
    pytest.mark.postgres,
]

D = Decimal


def in_threads(count: int, work: Callable[[], Any]) -> list[Any]:
    """Run ``work`` in ``count`` threads released together; return results (or exceptions)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def target(slot: int) -> None:
        try:
            barrier.wait(timeout=5)
            results[slot] = work()
        except Exception as error:  # reported to the test, not lost in the thread
            results[slot] = error
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=target, args=(slot,)) for slot in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return results


class SlowPrices(DatabasePriceSource):
    """Widens the window between reading the book and writing fills, where a race would be."""

    def bars_after(self, symbol: str, ts: datetime) -> list[PriceBar]:
        bars = super().bars_after(symbol, ts)
        time.sleep(0.2)
        return bars


def test_asyncio_run_from_sync_code_commits_before_it_returns(
    make_broker: MakeBroker,
) -> None:
    add_bars("SPY", [100.0, 100.0, 100.0])  # committed: no test transaction here
    broker = make_broker()
    assert not connection.in_atomic_block

    report = asyncio.run(broker.place_order(ticket()))

    # the caller's own connection sees the venue's work at once
    order = VenueOrder.objects.get(client_order_id="o-1")
    assert order.status == "filled" and order.broker_order_id == report.broker_order_id
    assert VenueFill.objects.filter(order=order).count() == 1
    assert VenueAccount.objects.get().cash == D("100000") - 10 * D("100.1") - 1
    # and a worker thread with its own loop and connection sees the same book
    (account,) = in_threads(1, lambda: asyncio.run(broker.get_account()))
    assert isinstance(account, BrokerAccount) and account.cash == order.account.cash


def test_no_connection_lingers_in_the_shared_sync_thread(make_broker: MakeBroker) -> None:
    add_bars("SPY", [100.0, 100.0, 100.0])
    broker = make_broker()

    asyncio.run(broker.get_account())

    def shared_thread_connection_is_closed() -> bool:
        return connection.connection is None

    assert asyncio.run(sync_to_async(shared_thread_connection_is_closed, thread_sensitive=True)())
    assert connection.connection is not None  # the caller's own connection is left alone


def test_two_processes_asking_at_once_never_fill_twice(
    make_broker: MakeBroker, clock: ManualClock
) -> None:
    add_bars("SPY", [(100, 100, 100, 100, 1_000)] * 6)
    broker = make_broker(
        config=BacktestConfig(max_volume_participation=D("0.1")),
        prices=SlowPrices(clock=clock),
    )
    placed = asyncio.run(broker.place_order(ticket(quantity=500)))
    clock.set(bar_end(5))  # bars 3, 4 and 5 are waiting to be worked

    def ask() -> VenueOrder:
        return services.venue_order_get(venue=broker.venue, broker_order_id=placed.broker_order_id)

    results = in_threads(2, ask)

    assert all(isinstance(r, VenueOrder) for r in results), results
    assert sorted(r.filled_qty for r in results) == [400, 400]
    assert VenueFill.objects.count() == 4  # bar 2 at placement, then bars 3, 4, 5 once each
    assert VenueAccount.objects.get().cash == D("100000") - 400 * D("100.1") - 4
    report = asyncio.run(broker.get_order_status(placed.broker_order_id))
    assert report.status is BrokerOrderStatus.PARTIALLY_FILLED and report.filled_quantity == 400


def test_first_use_from_two_processes_makes_one_account(make_broker: MakeBroker) -> None:
    broker = make_broker(account="fresh")

    results = in_threads(2, lambda: services.venue_account(venue=broker.venue))

    assert [r.cash for r in results] == [D("100000")] * 2, results
    assert VenueAccount.objects.filter(name="fresh").count() == 1

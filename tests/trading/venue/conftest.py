"""Fixtures of the simulated venue tests: minute bars we write, a manual clock, the broker.

Bars are one-minute bars of a Monday session from ``T0`` (15:00 UTC, the session is open):
bar i starts at ``T0 + i min`` and has finished at ``T0 + (i + 1) min``. Most tests call the
async broker through ``async_to_sync`` (the ORM work then runs in the test's thread, inside
the test's transaction); the tests in ``test_threads.py`` use ``asyncio.run`` and real commits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import pytest
from asgiref.sync import async_to_sync

from marketdata.domain import BarRecord, Timeframe
from marketdata.services import bars_ingest
from quant.clock import ManualClock
from trading.brokers.base import OrderTicket
from trading.brokers.simulated import SimulatedBroker

T0 = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
T = TypeVar("T")

# (open, high, low, close, volume), or just a close for a flat bar with plenty of volume
Row = tuple[float, float, float, float, float] | float


def bar_start(i: int) -> datetime:
    return T0 + i * MINUTE


def bar_end(i: int) -> datetime:
    """The moment bar i has finished (the venue may use it from then on)."""
    return T0 + (i + 1) * MINUTE


def add_bars(symbol: str, rows: Sequence[Row], *, first: int = 0) -> list[BarRecord]:
    """Store one-minute bars of ``symbol`` numbered from ``first``."""
    records = []
    for i, row in enumerate(rows, start=first):
        o, h, l, c, v = row if isinstance(row, tuple) else (row, row, row, row, 1_000_000.0)  # noqa: E741
        records.append(
            BarRecord(
                symbol=symbol,
                timeframe=Timeframe.MIN_1,
                ts=bar_start(i),
                open=Decimal(str(o)),
                high=Decimal(str(h)),
                low=Decimal(str(l)),
                close=Decimal(str(c)),
                volume=Decimal(str(v)),
            )
        )
    bars_ingest(symbol=symbol, timeframe=Timeframe.MIN_1, bars=records, source="test")
    return records


def run(function: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Call an async broker method from the test (sync) code."""
    return async_to_sync(function)(*args)


def ticket(
    cid: str = "o-1",
    *,
    symbol: str = "SPY",
    side: str = "buy",
    quantity: int | str = 10,
    order_type: str = "market",
    limit: str | None = None,
    stop: str | None = None,
) -> OrderTicket:
    return OrderTicket(
        client_order_id=cid,
        symbol=symbol,
        side=side,
        quantity=Decimal(str(quantity)),
        order_type=order_type,
        limit_price=Decimal(limit) if limit is not None else None,
        stop_price=Decimal(stop) if stop is not None else None,
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(bar_end(2))


class MakeBroker(Protocol):
    def __call__(self, **kwargs: Any) -> SimulatedBroker: ...


@pytest.fixture
def make_broker(clock: ManualClock) -> MakeBroker:
    def make(**kwargs: Any) -> SimulatedBroker:
        kwargs.setdefault("clock", clock)
        return SimulatedBroker(**kwargs)

    return make

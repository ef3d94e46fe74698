"""``DatabasePriceSource``: only finished bars, on the finest timeframe stored for a symbol."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from marketdata.domain import Timeframe
from marketdata.services import bars_ingest
from quant.calendar import MarketCalendar, day_start
from quant.clock import ManualClock
from tests.support.fixtures import make_bars
from tests.trading.venue.conftest import add_bars, bar_end, bar_start
from trading.venue.prices import DatabasePriceSource

pytestmark = pytest.mark.django_db

CALENDAR = MarketCalendar("XNYS")
MINUTE = timedelta(minutes=1)


def test_a_daily_bar_counts_from_its_session_close() -> None:
    bars = make_bars("SPY", Timeframe.DAY_1, datetime(2024, 1, 8, tzinfo=UTC), 3)
    bars_ingest(symbol="SPY", timeframe=Timeframe.DAY_1, bars=bars, source="test")
    close = CALENDAR.session_close(bars[-1].ts.date())  # 21:00 UTC in January
    clock = ManualClock(close - timedelta(seconds=1))
    prices = DatabasePriceSource(clock=clock)

    forming = prices.latest_bar("SPY")
    clock.set(close)
    finished = prices.latest_bar("SPY")

    assert forming is not None and forming.ts == bars[-2].ts
    assert finished is not None and finished.ts == bars[-1].ts
    assert float(bars[-1].close) == finished.close
    assert [b.ts for b in prices.bars_after("SPY", bars[0].ts)] == [bars[1].ts, bars[2].ts]
    earlier = prices.latest_bar("SPY", at=CALENDAR.session_close(bars[-2].ts.date()))
    assert earlier is not None and earlier.ts == bars[-2].ts  # asked about an earlier moment


def test_a_daily_bar_off_the_calendar_lasts_a_day() -> None:
    saturday = day_start(datetime(2024, 1, 13).date())
    template = make_bars("SPY", Timeframe.DAY_1, datetime(2024, 1, 8, tzinfo=UTC), 1)[0]
    weekend = replace(template, symbol="BTC/USD", ts=saturday)
    bars_ingest(symbol="BTC/USD", timeframe=Timeframe.DAY_1, bars=[weekend], source="test")
    clock = ManualClock(saturday + timedelta(hours=23))
    prices = DatabasePriceSource(clock=clock)

    assert prices.latest_bar("BTC/USD") is None
    clock.set(saturday + timedelta(days=1))
    assert prices.latest_bar("BTC/USD") is not None


def test_minute_bars_are_preferred_and_the_forming_one_is_invisible() -> None:
    daily = make_bars("SPY", Timeframe.DAY_1, datetime(2024, 2, 26, tzinfo=UTC), 5)
    bars_ingest(symbol="SPY", timeframe=Timeframe.DAY_1, bars=daily, source="test")
    add_bars("SPY", [100.0, 101.0, 102.0, 103.0])
    clock = ManualClock(bar_end(2) + 30 * timedelta(seconds=1))
    prices = DatabasePriceSource(clock=clock)

    latest = prices.latest_bar("SPY")
    after = prices.bars_after("SPY", bar_start(0))

    assert latest is not None and (latest.ts, latest.close) == (bar_start(2), 102.0)
    assert [b.ts for b in after] == [bar_start(1), bar_start(2)]  # bar 3 is still forming
    daily_only = DatabasePriceSource(clock=clock, timeframe=Timeframe.DAY_1)
    assert daily_only.latest_bar("SPY") is not None
    assert daily_only.latest_bar("SPY").ts == daily[-1].ts  # type: ignore[union-attr]


def test_a_symbol_without_bars_has_no_price() -> None:
    prices = DatabasePriceSource(clock=ManualClock(bar_end(5)))

    assert prices.latest_bar("NOPE") is None
    assert prices.bars_after("NOPE", bar_start(0)) == []

"""The synthetic provider: reproducible, consistent across timeframes, never ahead of the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketdata.domain import Timeframe, bar_problems, validate_bars
from marketdata.providers.synthetic import SyntheticProvider
from quant.calendar import MarketCalendar
from quant.clock import ManualClock

NOW = datetime(2024, 7, 1, 21, 0, tzinfo=UTC)


def provider(seed: int = 42, now: datetime = NOW) -> SyntheticProvider:
    return SyntheticProvider(seed=seed, clock=ManualClock(now))


def test_same_seed_same_bars_other_seed_other_bars() -> None:
    start = datetime(2023, 1, 1, tzinfo=UTC)
    a = provider().get_bars("AAPL", start, NOW, Timeframe.DAY_1)
    assert a == provider().get_bars("AAPL", start, NOW, Timeframe.DAY_1)
    assert a != provider(seed=43).get_bars("AAPL", start, NOW, Timeframe.DAY_1)
    assert a != provider().get_bars("MSFT", start, NOW, Timeframe.DAY_1)


def test_a_sub_range_gives_the_same_bars_as_the_full_range() -> None:
    full = provider().get_bars("SPY", datetime(2023, 1, 1, tzinfo=UTC), NOW, Timeframe.DAY_1)
    part = provider().get_bars(
        "SPY", datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC), Timeframe.DAY_1
    )
    assert part == [b for b in full if part[0].ts <= b.ts <= part[-1].ts]


def test_daily_bars_fall_on_exchange_sessions_only() -> None:
    bars = provider().get_bars("AAPL", datetime(2024, 1, 1, tzinfo=UTC), NOW, Timeframe.DAY_1)
    sessions = MarketCalendar("XNYS").sessions(
        datetime(2024, 1, 1).date(), datetime(2024, 7, 1).date()
    )
    assert [b.ts.date() for b in bars] == list(sessions)
    assert all(b.ts.hour == 0 and b.ts.tzinfo is not None for b in bars)


@pytest.mark.parametrize(
    "coarse", [Timeframe.MIN_5, Timeframe.MIN_15, Timeframe.HOUR_1, Timeframe.DAY_1]
)
def test_minute_bars_aggregate_to_every_coarser_timeframe(coarse: Timeframe) -> None:
    day_start, day_end = datetime(2024, 6, 24, tzinfo=UTC), datetime(2024, 6, 29, tzinfo=UTC)
    minutes = provider().get_bars("MSFT", day_start, day_end, Timeframe.MIN_1)
    big = provider().get_bars("MSFT", day_start, day_end, coarse)
    width = coarse.duration.total_seconds()
    for bar in big:
        if coarse is Timeframe.DAY_1:
            members = [m for m in minutes if m.ts.date() == bar.ts.date()]
        else:
            members = [
                m
                for m in minutes
                if int(m.ts.timestamp() // width * width) == int(bar.ts.timestamp())
            ]
        assert members, bar
        assert bar.open == members[0].open and bar.close == members[-1].close
        assert bar.high == max(m.high for m in members) and bar.low == min(m.low for m in members)
        assert bar.volume == sum((m.volume for m in members), Decimal(0))


def test_no_bar_is_returned_before_it_has_finished() -> None:
    mid_session = datetime(2024, 7, 1, 15, 2, 30, tzinfo=UTC)  # 11:02:30 New York
    clock = ManualClock(mid_session)
    bars = SyntheticProvider(seed=1, clock=clock).get_bars(
        "AAPL", datetime(2024, 7, 1, tzinfo=UTC), datetime(2024, 7, 2, tzinfo=UTC), Timeframe.MIN_1
    )
    assert bars[-1].ts + timedelta(minutes=1) <= mid_session
    daily = SyntheticProvider(seed=1, clock=clock).get_bars(
        "AAPL", datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 7, 2, tzinfo=UTC), Timeframe.DAY_1
    )
    assert daily[-1].ts.date() == datetime(2024, 6, 28).date()  # today's session is not closed yet


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    symbol=st.sampled_from(["AAPL", "X", "BRK.B", "QQQ"]),
    day_offset=st.integers(0, 4000),
)
def test_every_generated_bar_is_valid(seed: int, symbol: str, day_offset: int) -> None:
    start = datetime(2005, 1, 3, tzinfo=UTC) + timedelta(days=day_offset)
    bars = SyntheticProvider(seed=seed, clock=ManualClock(NOW)).get_bars(
        symbol, start, start + timedelta(days=10), Timeframe.MIN_15
    )
    assert all(not bar_problems(b) for b in bars)
    validate_bars(bars, source="synthetic")


def test_live_quotes_stream_around_the_last_close() -> None:
    quotes = provider().stream_live_quotes(["AAPL", "MSFT"])
    first = [next(quotes) for _ in range(4)]
    assert {q.symbol for q in first} == {"AAPL", "MSFT"}
    assert all(q.bid < q.ask for q in first)

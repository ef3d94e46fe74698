"""``marketdata.prices.last_prices``: the newest close per symbol over every timeframe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from marketdata.domain import BarRecord, Timeframe
from marketdata.prices import last_prices
from marketdata.services import bars_ingest

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def store(symbol: str, timeframe: Timeframe, closes: dict[datetime, str]) -> None:
    bars = [
        BarRecord(
            symbol=symbol,
            timeframe=timeframe,
            ts=ts,
            open=Decimal(close),
            high=Decimal(close),
            low=Decimal(close),
            close=Decimal(close),
            volume=Decimal(1000),
        )
        for ts, close in closes.items()
    ]
    bars_ingest(symbol=symbol, timeframe=timeframe, bars=bars, source="test")


def test_the_newest_bar_of_any_timeframe_gives_the_price() -> None:
    day = T0.replace(hour=0)
    store("AAA", Timeframe.DAY_1, {day - timedelta(days=1): "10.00", day: "11.00"})
    store("AAA", Timeframe.MIN_1, {T0: "11.50", T0 + timedelta(minutes=1): "11.75"})
    store("BBB", Timeframe.DAY_1, {day: "20.25"})
    store("CCC", Timeframe.HOUR_1, {T0: "30.00"})
    store("CCC", Timeframe.MIN_15, {T0: "30.10"})  # same time: the first timeframe by name

    prices = last_prices(["AAA", "BBB", "CCC", "AAA", "NONE"])

    assert prices == {
        "AAA": Decimal("11.75"),
        "BBB": Decimal("20.25"),
        "CCC": Decimal("30.10"),
    }
    assert all(isinstance(p, Decimal) for p in prices.values())
    assert last_prices([]) == {} and last_prices(["NONE"]) == {}

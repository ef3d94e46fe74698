"""FallbackProvider: Alpaca first, Polygon when Alpaca fails or is stale (both on loopback)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from marketdata.domain import BarRecord, Timeframe
from marketdata.providers.base import DataProvider, FinalProviderError
from marketdata.providers.resilient import FallbackProvider, RetryingProvider
from quant.calendar import MarketCalendar
from quant.clock import ManualClock
from tests.support.alpaca_server import AlpacaServer
from tests.support.fixtures import alpaca_provider, make_bars, polygon_provider
from tests.support.polygon_server import PolygonServer, to_millis

START = datetime(2024, 1, 2, tzinfo=UTC)
NOW = datetime(2024, 1, 12, 22, 0, tzinfo=UTC)  # Friday, after the close: Jan 12 is final
SESSIONS = 9  # Jan 2, 3, 4, 5, 8, 9, 10, 11, 12


def no_sleep(seconds: float) -> None:
    pass


def retrying(inner: DataProvider) -> RetryingProvider:
    return RetryingProvider(inner, attempts=3, max_wait=0.01, sleep=no_sleep)


def fallback(
    alpaca: AlpacaServer, polygon: PolygonServer, **alpaca_kwargs: Any
) -> FallbackProvider:
    return FallbackProvider(
        retrying(alpaca_provider(alpaca, **alpaca_kwargs)),
        retrying(polygon_provider(polygon)),
        calendar=MarketCalendar("XNYS"),
        clock=ManualClock(NOW),
    )


def daily(symbol: str = "AAPL", count: int = SESSIONS) -> list[BarRecord]:
    return make_bars(symbol, Timeframe.DAY_1, START, count)


def values(bars: list[BarRecord]) -> list[tuple[Any, ...]]:
    return [(b.ts, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count) for b in bars]


@pytest.fixture
def servers(
    alpaca_server: AlpacaServer, polygon_server: PolygonServer
) -> tuple[AlpacaServer, PolygonServer]:
    polygon_server.add_bars("AAPL", Timeframe.DAY_1, daily())
    return alpaca_server, polygon_server


def test_fresh_primary_data_is_used_and_polygon_is_not_asked(
    servers: tuple[AlpacaServer, PolygonServer],
) -> None:
    alpaca, polygon = servers
    alpaca.add_bars("AAPL", Timeframe.DAY_1, daily())

    bars = fallback(alpaca, polygon).get_bars("AAPL", START, NOW, Timeframe.DAY_1)

    assert values(bars) == values(daily())
    assert {b.source for b in bars} == {"alpaca"}
    assert len(polygon.requests) == 0


def test_bad_alpaca_credentials_switch_to_polygon(
    servers: tuple[AlpacaServer, PolygonServer],
) -> None:
    alpaca, polygon = servers
    alpaca.add_bars("AAPL", Timeframe.DAY_1, daily())

    bars = fallback(alpaca, polygon, secret_key="revoked").get_bars(
        "AAPL", START, NOW, Timeframe.DAY_1
    )

    assert values(bars) == values(daily())
    assert {b.source for b in bars} == {"polygon"}
    assert [r.status for r in alpaca.requests] == [403]  # final: not retried
    assert polygon.requests[0].path.endswith(f"/1/day/{to_millis(START)}/{to_millis(NOW)}")


def test_an_alpaca_outage_exhausts_the_retries_then_switches_to_polygon(
    servers: tuple[AlpacaServer, PolygonServer],
) -> None:
    alpaca, polygon = servers
    alpaca.add_bars("AAPL", Timeframe.DAY_1, daily())
    alpaca.faults.add(status=503, times=None)

    bars = fallback(alpaca, polygon).get_bars("AAPL", START, NOW, Timeframe.DAY_1)

    assert {b.source for b in bars} == {"polygon"} and len(bars) == SESSIONS
    assert [r.status for r in alpaca.requests] == [503, 503, 503]


def test_an_alpaca_connection_reset_storm_switches_to_polygon(
    servers: tuple[AlpacaServer, PolygonServer],
) -> None:
    alpaca, polygon = servers
    alpaca.faults.add(reset=True, times=None)

    bars = fallback(alpaca, polygon).get_bars("AAPL", START, NOW, Timeframe.DAY_1)

    assert values(bars) == values(daily())
    assert len(alpaca.requests) == 3


def test_stale_alpaca_data_is_completed_from_polygon(
    servers: tuple[AlpacaServer, PolygonServer],
) -> None:
    alpaca, polygon = servers
    alpaca.add_bars("AAPL", Timeframe.DAY_1, daily(count=SESSIONS - 2))  # lags two sessions

    bars = fallback(alpaca, polygon).get_bars("AAPL", START, NOW, Timeframe.DAY_1)

    assert values(bars) == values(daily())
    assert [b.source for b in bars] == ["alpaca"] * 7 + ["polygon"] * 2
    last_alpaca = daily(count=SESSIONS - 2)[-1].ts
    assert polygon.requests.count() == 1
    assert polygon.requests[0].path.endswith(f"/{to_millis(last_alpaca)}/{to_millis(NOW)}")


def test_stale_alpaca_data_is_kept_when_polygon_fails(
    servers: tuple[AlpacaServer, PolygonServer],
) -> None:
    alpaca, polygon = servers
    alpaca.add_bars("AAPL", Timeframe.DAY_1, daily(count=SESSIONS - 2))
    polygon.faults.add(status=500, times=None)

    bars = fallback(alpaca, polygon).get_bars("AAPL", START, NOW, Timeframe.DAY_1)

    assert values(bars) == values(daily(count=SESSIONS - 2))
    assert {b.source for b in bars} == {"alpaca"}
    assert [r.status for r in polygon.requests] == [500, 500, 500]


def test_stale_alpaca_data_is_kept_when_polygon_refuses_the_key(
    servers: tuple[AlpacaServer, PolygonServer],
) -> None:
    alpaca, polygon = servers
    alpaca.add_bars("AAPL", Timeframe.DAY_1, daily(count=SESSIONS - 2))
    provider = fallback(alpaca, polygon)
    polygon.api_key = "rotated"  # our key no longer valid

    bars = provider.get_bars("AAPL", START, NOW, Timeframe.DAY_1)

    assert len(bars) == SESSIONS - 2
    assert [r.status for r in polygon.requests] == [401]


def test_when_both_vendors_fail_the_secondarys_error_surfaces(
    servers: tuple[AlpacaServer, PolygonServer],
) -> None:
    alpaca, polygon = servers
    provider = fallback(alpaca, polygon, secret_key="revoked")
    polygon.api_key = "rotated"

    with pytest.raises(FinalProviderError, match="Polygon answered 401"):
        provider.get_bars("AAPL", START, NOW, Timeframe.DAY_1)


def test_a_range_ending_before_the_last_session_is_never_stale(
    servers: tuple[AlpacaServer, PolygonServer],
) -> None:
    alpaca, polygon = servers
    alpaca.add_bars("AAPL", Timeframe.DAY_1, daily(count=5))
    end = datetime(2024, 1, 8, 23, 0, tzinfo=UTC)

    bars = fallback(alpaca, polygon).get_bars("AAPL", START, end, Timeframe.DAY_1)

    assert len(bars) == 5 and len(polygon.requests) == 0


def test_live_quotes_come_from_the_primary_or_the_secondary_when_the_primary_has_none(
    alpaca_server: AlpacaServer, polygon_server: PolygonServer
) -> None:
    from marketdata.providers.synthetic import SyntheticProvider

    alpaca_server.set_quote("AAPL", bid=1, ask=2)
    both = FallbackProvider(
        alpaca_provider(alpaca_server, sleep=lambda _: None), SyntheticProvider()
    )
    assert next(both.stream_live_quotes(["AAPL"])).ask == 2
    no_stream = FallbackProvider(polygon_provider(polygon_server), SyntheticProvider())
    quote = next(no_stream.stream_live_quotes(["AAPL"]))
    assert quote.symbol == "AAPL" and quote.bid < quote.ask

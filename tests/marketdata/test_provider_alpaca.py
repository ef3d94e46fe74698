"""AlpacaProvider (the real alpaca-py client inside) against the loopback Alpaca server."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.models import BarSet
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame

from common.ratelimit import LocalRateLimiter
from marketdata.domain import BarRecord, Timeframe
from marketdata.providers.base import FinalProviderError, RetryableProviderError
from marketdata.providers.resilient import RetryingProvider
from tests.support.alpaca_server import AlpacaServer
from tests.support.fixtures import alpaca_provider, make_bars

DAY = datetime(2024, 1, 2, tzinfo=UTC)  # a Tuesday session
WEEK_END = datetime(2024, 1, 9, tzinfo=UTC)
BARS_PATH = "/v2/stocks/bars"


def as_alpaca(bars: list[BarRecord]) -> list[BarRecord]:
    return [replace(b, source="alpaca") for b in bars]


class RecordingSleep:
    """A ``sleep`` that records the waits and really sleeps only when told to."""

    def __init__(self, real: bool = False) -> None:
        self.waits: list[float] = []
        self.real = real

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.real:
            time.sleep(seconds)


def retrying(inner: Any, *, sleep: RecordingSleep | None = None, **kwargs: Any) -> RetryingProvider:
    options: dict[str, Any] = {"attempts": 3, "max_wait": 1.0, "sleep": sleep or RecordingSleep()}
    options.update(kwargs)
    return RetryingProvider(inner, **options)


@pytest.fixture
def paged_server(alpaca_server: AlpacaServer) -> AlpacaServer:
    """47 five-minute AAPL bars served 10 per page: 5 pages."""
    alpaca_server.page_cap = 10
    alpaca_server.add_bars("AAPL", Timeframe.MIN_5, make_bars("AAPL", Timeframe.MIN_5, DAY, 47))
    return alpaca_server


# -- protocol and data ---------------------------------------------------------------------


def test_pagination_returns_every_bar_once_and_in_order(paged_server: AlpacaServer) -> None:
    expected = make_bars("AAPL", Timeframe.MIN_5, DAY, 47)

    bars = alpaca_provider(paged_server).get_bars("AAPL", DAY, WEEK_END, Timeframe.MIN_5)

    assert bars == as_alpaca(expected)
    log = paged_server.requests.filter(path=BARS_PATH)
    assert len(log) == 5
    assert "page_token" not in log[0].query
    tokens = [r.query.get("page_token") for r in log[1:]]
    assert all(tokens) and len(set(tokens)) == 4
    for request in log:  # every page repeats the query, as alpaca-py does
        assert request.query["symbols"] == "AAPL"
        assert request.query["timeframe"] == "5Min"
        assert request.query["start"] == "2024-01-02T00:00:00+00:00"
        assert request.query["end"] == "2024-01-09T00:00:00+00:00"


def test_request_carries_credentials_feed_and_adjustment(alpaca_server: AlpacaServer) -> None:
    provider = alpaca_provider(alpaca_server, feed="sip", adjustment="split")

    assert provider.get_bars("AAPL", DAY, WEEK_END, Timeframe.HOUR_1) == []

    request = alpaca_server.requests.last(path=BARS_PATH)
    assert request.header("APCA-API-KEY-ID") == "test-key"
    assert request.header("APCA-API-SECRET-KEY") == "test-secret"
    assert request.query["feed"] == "sip"
    assert request.query["adjustment"] == "split"
    assert request.query["timeframe"] == "1Hour"


def test_daily_bars_are_stamped_at_new_york_midnight_and_come_back_as_session_dates(
    alpaca_server: AlpacaServer,
) -> None:
    # Winter (EST) and summer (EDT) sessions: the wire time differs, the session date must not.
    winter = make_bars("MSFT", Timeframe.DAY_1, datetime(2024, 3, 7, tzinfo=UTC), 4)
    alpaca_server.add_bars("MSFT", "1Day", winter)
    wire = [row["t"] for row in alpaca_server.stored_bars("MSFT", "1Day")]
    assert wire == [
        "2024-03-07T05:00:00Z",
        "2024-03-08T05:00:00Z",
        "2024-03-11T04:00:00Z",  # after the switch to daylight saving time
        "2024-03-12T04:00:00Z",
    ]

    bars = alpaca_provider(alpaca_server).get_bars(
        "MSFT", datetime(2024, 3, 7, tzinfo=UTC), datetime(2024, 3, 13, tzinfo=UTC), Timeframe.DAY_1
    )

    assert bars == as_alpaca(winter)


def test_decimal_values_arrive_exactly(alpaca_server: AlpacaServer) -> None:
    ts = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    tricky = [
        BarRecord(
            "BRK.A",
            Timeframe.MIN_1,
            ts,
            Decimal("612345.67"),
            Decimal("612399.99"),
            Decimal("612300.01"),
            Decimal("612398.10"),
            Decimal("3"),
            vwap=Decimal("612350.123456"),
            trade_count=3,
        ),
        BarRecord(
            "BRK.A",
            Timeframe.MIN_1,
            ts + timedelta(minutes=1),
            Decimal("0.0001"),
            Decimal("0.0003"),
            Decimal("0.0001"),
            Decimal("0.0002"),
            Decimal("1234567890123"),
            vwap=Decimal("0.000123"),
            trade_count=None,
        ),
        BarRecord(
            "BRK.A",
            Timeframe.MIN_1,
            ts + timedelta(minutes=2),
            Decimal("187.1"),
            Decimal("187.3"),
            Decimal("186.9"),
            Decimal("187.2"),
            Decimal("0.5"),
            vwap=None,
            trade_count=0,
        ),
    ]
    alpaca_server.add_bars("BRK.A", Timeframe.MIN_1, tricky)

    bars = alpaca_provider(alpaca_server).get_bars("BRK.A", DAY, WEEK_END, Timeframe.MIN_1)

    assert bars == as_alpaca(tricky)
    assert [str(b.vwap) for b in bars] == ["612350.123456", "0.000123", "None"]
    assert [str(b.open) for b in bars] == ["612345.67", "0.0001", "187.1"]
    assert bars[1].volume == Decimal("1234567890123")


def test_multi_symbol_pages_count_bars_of_all_symbols_together(
    alpaca_server: AlpacaServer,
) -> None:
    for symbol in ("MSFT", "AAPL"):
        alpaca_server.add_bars(symbol, "1Min", make_bars(symbol, "1Min", DAY, 3))
    headers = {"APCA-API-KEY-ID": "test-key", "APCA-API-SECRET-KEY": "test-secret"}
    query = {"symbols": "MSFT,AAPL", "timeframe": "1Min", "start": "2024-01-02", "limit": "4"}

    first = requests.get(
        f"{alpaca_server.url}{BARS_PATH}", params=query, headers=headers, timeout=5
    )
    page1 = first.json()
    second = requests.get(
        f"{alpaca_server.url}{BARS_PATH}",
        params={**query, "page_token": page1["next_page_token"]},
        headers=headers,
        timeout=5,
    ).json()

    assert first.status_code == 200
    assert {s: len(rows) for s, rows in page1["bars"].items()} == {"AAPL": 3, "MSFT": 1}
    assert list(page1["bars"]) == ["AAPL", "MSFT"]
    assert {s: len(rows) for s, rows in second["bars"].items()} == {"MSFT": 2}
    assert second["next_page_token"] is None
    msft = page1["bars"]["MSFT"] + second["bars"]["MSFT"]
    assert [row["t"] for row in msft] == [
        "2024-01-02T14:30:00Z",
        "2024-01-02T14:31:00Z",
        "2024-01-02T14:32:00Z",
    ]
    assert set(msft[0]) == {"t", "o", "h", "l", "c", "v", "n", "vw"}


def test_the_sdk_pages_a_multi_symbol_request_in_model_form(alpaca_server: AlpacaServer) -> None:
    alpaca_server.page_cap = 4
    for symbol in ("AAPL", "MSFT", "SPY"):
        alpaca_server.add_bars(symbol, "1Day", make_bars(symbol, "1Day", DAY, 5))
    client = StockHistoricalDataClient("test-key", "test-secret", url_override=alpaca_server.url)

    barset = client.get_stock_bars(  # model form: raw_data is off
        StockBarsRequest(
            symbol_or_symbols=["SPY", "AAPL", "MSFT"],
            timeframe=TimeFrame.Day,
            start=DAY,
            end=WEEK_END + timedelta(days=1),
        )
    )

    assert isinstance(barset, BarSet)
    assert {s: len(rows) for s, rows in barset.data.items()} == {"AAPL": 5, "MSFT": 5, "SPY": 5}
    assert alpaca_server.requests.count(path=BARS_PATH) == 4  # 15 bars, 4 per page
    closes = [bar.close for bar in barset.data["SPY"]]
    assert closes == [float(b.close) for b in make_bars("SPY", "1Day", DAY, 5)]


def test_single_symbol_endpoint_pages_too(alpaca_server: AlpacaServer) -> None:
    alpaca_server.page_cap = 2
    alpaca_server.add_bars("AAPL", "15Min", make_bars("AAPL", "15Min", DAY, 3))
    headers = {"APCA-API-KEY-ID": "test-key", "APCA-API-SECRET-KEY": "test-secret"}
    url = f"{alpaca_server.url}/v2/stocks/AAPL/bars"

    page1 = requests.get(
        url, params={"timeframe": "15T", "start": "2024-01-02"}, headers=headers, timeout=5
    ).json()
    page2 = requests.get(
        url,
        params={"timeframe": "15T", "start": "2024-01-02", "page_token": page1["next_page_token"]},
        headers=headers,
        timeout=5,
    ).json()

    assert page1["symbol"] == "AAPL" and len(page1["bars"]) == 2
    assert len(page2["bars"]) == 1 and page2["next_page_token"] is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"timeframe": "7Fortnight"}, "invalid timeframe"),
        ({"timeframe": "60Min"}, "invalid timeframe"),
        ({"timeframe": "2Day"}, "invalid timeframe"),
        ({"start": "2024-13-01"}, "invalid start"),
        ({"start": "2024-01-02T00:00:00"}, "invalid start"),  # RFC 3339 needs an offset
        ({"end": "yesterday"}, "invalid end"),
        ({"start": "2024-01-03T00:00:00Z", "end": "2024-01-02T00:00:00Z"}, "before start"),
        ({"limit": "0"}, "invalid limit"),
        ({"limit": "10001"}, "invalid limit"),
        ({"feed": "nasdaq"}, "invalid feed"),
        ({"sort": "up"}, "invalid sort"),
        ({"page_token": "not base64!"}, "invalid page_token"),
        ({"symbols": ""}, "invalid symbols"),
    ],
)
def test_bad_parameters_get_422_with_alpacas_error_shape(
    alpaca_server: AlpacaServer, params: dict[str, str], message: str
) -> None:
    query = {"symbols": "AAPL", "timeframe": "1Min", "start": "2024-01-02T00:00:00Z", **params}
    response = requests.get(
        f"{alpaca_server.url}{BARS_PATH}",
        params=query,
        headers={"APCA-API-KEY-ID": "test-key", "APCA-API-SECRET-KEY": "test-secret"},
        timeout=5,
    )

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == 42210000
    assert message in body["message"]


def test_credentials_are_checked(alpaca_server: AlpacaServer) -> None:
    url = f"{alpaca_server.url}{BARS_PATH}?symbols=AAPL&timeframe=1Min"

    missing = requests.get(url, timeout=5)
    wrong = requests.get(
        url, headers={"APCA-API-KEY-ID": "test-key", "APCA-API-SECRET-KEY": "nope"}, timeout=5
    )

    assert (missing.status_code, missing.json()) == (401, {"message": "unauthorized."})
    assert (wrong.status_code, wrong.json()) == (403, {"message": "forbidden."})


def test_routes_are_extensible_and_share_the_credential_check(alpaca_server: AlpacaServer) -> None:
    alpaca_server.route("GET", r"/v2/account", lambda request: (200, {}, {"status": "ACTIVE"}))
    headers = {"APCA-API-KEY-ID": "test-key", "APCA-API-SECRET-KEY": "test-secret"}

    ok = requests.get(f"{alpaca_server.url}/v2/account", headers=headers, timeout=5)
    refused = requests.get(f"{alpaca_server.url}/v2/account", timeout=5)
    unknown = requests.get(f"{alpaca_server.url}/v2/nothing", headers=headers, timeout=5)
    wrong_method = requests.post(f"{alpaca_server.url}/v2/account", headers=headers, timeout=5)

    assert (ok.status_code, ok.json()) == (200, {"status": "ACTIVE"})
    assert refused.status_code == 401
    assert unknown.status_code == 404 and unknown.json()["code"] == 40410000
    assert wrong_method.status_code == 405


def test_faults_count_matching_requests_and_fire_in_order(alpaca_server: AlpacaServer) -> None:
    headers = {"apca-api-key-id": "test-key", "APCA-API-SECRET-KEY": "test-secret"}
    url = f"{alpaca_server.url}{BARS_PATH}?symbols=AAPL&timeframe=1Min"
    alpaca_server.faults.add(status=500, path_prefix="/v2/orders")  # never matches
    alpaca_server.faults.add(status=503, after=1, times=2, path_prefix="/v2/stocks")
    alpaca_server.faults.add(
        status=429, retry_after=3, body={"message": "slow down"}, headers={"X-Test": "1"}
    )

    answers = [requests.get(url, headers=headers, timeout=5) for _ in range(5)]

    assert [a.status_code for a in answers] == [429, 503, 503, 200, 200]
    assert answers[0].headers["Retry-After"] == "3" and answers[0].headers["X-Test"] == "1"
    assert answers[0].json() == {"message": "slow down"}
    assert answers[1].json() == {"code": 50310000, "message": "service unavailable"}
    log = alpaca_server.requests
    assert log.count(faulted=True) == 3 and log.count(status=200) == 2
    assert log.last().header("APCA-API-KEY-ID") == "test-key"  # case-insensitive
    assert log[0].query == {"symbols": "AAPL", "timeframe": "1Min"}
    assert [f.fired for f in alpaca_server.faults.active] == [0]  # only the unmatched one left


def test_a_stopped_server_refuses_connections() -> None:
    with AlpacaServer() as server:
        url = server.url
        assert requests.get(f"{url}/v2/stocks/bars", timeout=5).status_code == 401

    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/v2/stocks/bars", timeout=1)


# -- errors and resilience -----------------------------------------------------------------


def test_wrong_credentials_are_a_final_error_and_not_retried(alpaca_server: AlpacaServer) -> None:
    sleep = RecordingSleep()
    provider = retrying(alpaca_provider(alpaca_server, secret_key="wrong"), sleep=sleep)

    with pytest.raises(FinalProviderError, match=r"Alpaca answered 403: .*forbidden"):
        provider.get_bars("AAPL", DAY, WEEK_END, Timeframe.MIN_1)

    assert alpaca_server.requests.count(path=BARS_PATH) == 1
    assert sleep.waits == []


def test_422_is_a_final_error_with_the_vendor_message(alpaca_server: AlpacaServer) -> None:
    provider = retrying(alpaca_provider(alpaca_server))

    with pytest.raises(FinalProviderError) as caught:
        provider.get_bars("AAPL", WEEK_END, DAY, Timeframe.MIN_1)  # end before start

    assert "Alpaca answered 422" in caught.value.message
    assert "end should not be before start" in caught.value.message
    assert alpaca_server.requests.count(path=BARS_PATH) == 1


def test_429_is_retried_after_the_servers_retry_after(paged_server: AlpacaServer) -> None:
    paged_server.faults.add(status=429, retry_after=0.2, path_prefix=BARS_PATH)
    sleep = RecordingSleep(real=True)
    provider = retrying(alpaca_provider(paged_server), sleep=sleep)

    bars = provider.get_bars("AAPL", DAY, WEEK_END, Timeframe.MIN_5)

    assert len(bars) == 47
    assert sleep.waits == [pytest.approx(0.2)]
    log = paged_server.requests.all()
    assert [r.status for r in log] == [429, 200, 200, 200, 200, 200]
    assert log[1].time - log[0].time >= 0.2


def test_the_sdks_own_retry_loop_is_off(alpaca_server: AlpacaServer) -> None:
    alpaca_server.faults.add(status=429, retry_after=7)

    started = time.monotonic()
    with pytest.raises(RetryableProviderError) as caught:
        alpaca_provider(alpaca_server).get_bars("AAPL", DAY, WEEK_END, Timeframe.MIN_1)

    assert caught.value.retry_after == 7.0
    assert len(alpaca_server.requests) == 1  # the SDK neither slept 3 s nor asked again
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_with_backoff(paged_server: AlpacaServer, status: int) -> None:
    paged_server.faults.add(status=status, times=2)
    sleep = RecordingSleep()

    bars = retrying(alpaca_provider(paged_server), sleep=sleep).get_bars(
        "AAPL", DAY, WEEK_END, Timeframe.MIN_5
    )

    assert len(bars) == 47
    assert sleep.waits == [0.5, 1.0]  # exponential back-off, no Retry-After given
    assert [r.status for r in paged_server.requests][:3] == [status, status, 200]


def test_a_failure_mid_pagination_never_returns_a_partial_answer(
    paged_server: AlpacaServer,
) -> None:
    paged_server.faults.add(status=500, after=2, times=1)
    expected = as_alpaca(make_bars("AAPL", Timeframe.MIN_5, DAY, 47))

    with pytest.raises(RetryableProviderError, match="Alpaca answered 500"):
        alpaca_provider(paged_server).get_bars("AAPL", DAY, WEEK_END, Timeframe.MIN_5)
    bars = retrying(alpaca_provider(paged_server)).get_bars("AAPL", DAY, WEEK_END, Timeframe.MIN_5)

    assert bars == expected  # the retry starts over: every bar once, in order
    assert [r.status for r in paged_server.requests] == [200, 200, 500] + [200] * 5


def test_a_connection_reset_is_retried(paged_server: AlpacaServer) -> None:
    paged_server.faults.add(reset=True, after=1)

    with pytest.raises(RetryableProviderError, match="Alpaca unreachable"):
        alpaca_provider(paged_server).get_bars("AAPL", DAY, WEEK_END, Timeframe.MIN_5)
    paged_server.requests.clear()
    paged_server.faults.add(reset=True)
    bars = retrying(alpaca_provider(paged_server)).get_bars("AAPL", DAY, WEEK_END, Timeframe.MIN_5)

    assert len(bars) == 47
    log = paged_server.requests.all()
    assert log[0].fault == "reset" and log[0].status is None
    assert len(log) == 6


def test_a_slow_answer_beyond_the_timeout_is_a_retryable_timeout(
    alpaca_server: AlpacaServer,
) -> None:
    alpaca_server.add_bars("AAPL", "1Min", make_bars("AAPL", "1Min", DAY, 5))
    alpaca_server.faults.add(delay=1.0)
    provider = alpaca_provider(alpaca_server, timeout=0.2)

    with pytest.raises(RetryableProviderError, match=r"(?i)timed out"):  # not the 1 s answer
        provider.get_bars("AAPL", DAY, WEEK_END, Timeframe.MIN_1)

    alpaca_server.faults.add(delay=1.0)
    bars = retrying(provider).get_bars("AAPL", DAY, WEEK_END, Timeframe.MIN_1)
    assert len(bars) == 5


def test_a_slow_answer_within_the_timeout_is_fine(alpaca_server: AlpacaServer) -> None:
    alpaca_server.add_bars("AAPL", "1Min", make_bars("AAPL", "1Min", DAY, 5))
    alpaca_server.faults.add(delay=0.1)

    bars = alpaca_provider(alpaca_server, timeout=2).get_bars(
        "AAPL", DAY, WEEK_END, Timeframe.MIN_1
    )

    assert len(bars) == 5
    assert alpaca_server.requests[0].fault == "delay 0.1s"


@pytest.mark.parametrize("body", ["<html>down for maintenance</html>", {"unexpected": True}])
def test_an_unreadable_answer_is_a_retryable_provider_error(
    alpaca_server: AlpacaServer, body: Any
) -> None:
    alpaca_server.faults.add(status=200, body=body)

    with pytest.raises(RetryableProviderError):
        alpaca_provider(alpaca_server).get_bars("AAPL", DAY, WEEK_END, Timeframe.MIN_1)


def test_the_rate_limiter_counts_every_page(paged_server: AlpacaServer) -> None:
    clock = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    limiter = LocalRateLimiter(2, monotonic=lambda: clock[0], sleep=sleep)

    bars = alpaca_provider(paged_server, rate_limiter=limiter).get_bars(
        "AAPL", DAY, WEEK_END, Timeframe.MIN_5
    )

    assert len(bars) == 47
    # 5 pages at 2 per minute with a burst of 2: pages 3, 4 and 5 each wait 30 s.
    assert waits == [pytest.approx(30.0)] * 3
    assert paged_server.requests.count(path=BARS_PATH) == 5


def test_the_local_rate_limiter_limits_in_real_time() -> None:
    limiter = LocalRateLimiter(1200)  # 20 per second, burst of 1200
    for _ in range(1200):
        limiter.acquire()  # the burst is free

    started = time.monotonic()
    for _ in range(4):
        limiter.acquire()
    elapsed = time.monotonic() - started

    assert 0.15 <= elapsed < 0.6  # 4 more tokens at 20/s take about 0.2 s


# -- ingestion end to end through the loopback server ----------------------------------------

JOB_START = datetime(2024, 1, 1, tzinfo=UTC)
JOB_SYMBOLS = ("AAPL", "MSFT")
JOB_BARS = 60  # sessions Jan 2 .. Mar 27, 2024


def job_source() -> dict[str, list[BarRecord]]:
    return {s: make_bars(s, Timeframe.DAY_1, JOB_START, JOB_BARS) for s in JOB_SYMBOLS}


def job_end() -> datetime:
    return job_source()["AAPL"][-1].ts + timedelta(hours=12)


@pytest.fixture
def ingest_server(alpaca_server: AlpacaServer) -> AlpacaServer:
    for symbol, bars in job_source().items():
        alpaca_server.add_bars(symbol, Timeframe.DAY_1, bars)
    return alpaca_server


def run_job(server: AlpacaServer, job_id: int) -> Any:
    from marketdata import services

    provider = retrying(alpaca_provider(server))  # 3 attempts, no real sleep
    return services.ingestion_job_run(job_id=job_id, provider=provider)


def new_job() -> Any:
    from marketdata import services

    return services.ingestion_job_create(
        provider="alpaca",
        symbols=list(JOB_SYMBOLS),
        timeframe=Timeframe.DAY_1,
        start=JOB_START,
        end=job_end(),
    )


def stored(symbol: str) -> list[tuple[Any, ...]]:
    from marketdata.models import Bar

    return list(
        Bar.objects.filter(instrument__symbol=symbol, timeframe="1Day")
        .order_by("ts")
        .values_list("ts", "open", "high", "low", "close", "volume", "vwap", "trade_count")
    )


def source_rows(bars: list[BarRecord]) -> list[tuple[Any, ...]]:
    return [(b.ts, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count) for b in bars]


def requested_windows(server: AlpacaServer) -> list[tuple[str, datetime]]:
    return [
        (r.query["symbols"], datetime.fromisoformat(r.query["start"]))
        for r in server.requests.filter(path=BARS_PATH)
    ]


@pytest.mark.django_db
def test_ingestion_through_alpaca_is_exact_and_idempotent(
    ingest_server: AlpacaServer, settings: Any
) -> None:
    from marketdata.models import JobStatus

    settings.MARKETDATA_CHUNK_BARS = 10  # 14-day chunks: 7 per symbol
    first = run_job(ingest_server, new_job().pk)

    assert first.status == JobStatus.SUCCEEDED, first.error
    assert (first.chunks_done, first.chunks_total) == (14, 14)
    assert (first.rows_written, first.rows_unchanged) == (120, 0)
    for symbol, bars in job_source().items():
        assert stored(symbol) == source_rows(bars)
    assert ingest_server.requests.count(path=BARS_PATH) == 14

    second = run_job(ingest_server, new_job().pk)

    assert second.status == JobStatus.SUCCEEDED
    assert (second.rows_written, second.rows_unchanged) == (0, 120)
    for symbol, bars in job_source().items():
        assert stored(symbol) == source_rows(bars)


@pytest.mark.django_db
def test_a_job_failed_by_an_outage_resumes_after_its_last_committed_chunk(
    ingest_server: AlpacaServer, settings: Any
) -> None:
    from marketdata import services
    from marketdata.models import JobStatus

    settings.MARKETDATA_CHUNK_BARS = 10
    windows = services.plan_chunks(JOB_START, job_end(), Timeframe.DAY_1, 10)
    assert len(windows) == 7
    # Three AAPL chunks succeed, then the vendor answers 500 to everything.
    ingest_server.faults.add(status=500, after=3, times=None, path_prefix=BARS_PATH)
    job = new_job()

    failed = run_job(ingest_server, job.pk)

    assert failed.status == JobStatus.FAILED
    assert failed.error.startswith("Alpaca answered 500:")
    assert "internal server error" in failed.error
    assert failed.chunks_done == 3
    assert [r.status for r in ingest_server.requests] == [200, 200, 200, 500, 500, 500]
    aapl = job_source()["AAPL"]
    kept = [b for b in aapl if b.ts <= windows[2][1]]
    assert stored("AAPL") == source_rows(kept) and failed.rows_written == len(kept)
    assert stored("MSFT") == []

    ingest_server.faults.clear()
    ingest_server.requests.clear()
    services.ingestion_job_retry(job=failed)
    done = run_job(ingest_server, job.pk)

    assert done.status == JobStatus.SUCCEEDED, done.error
    assert (done.chunks_done, done.chunks_total) == (14, 14)
    assert done.rows_written == 2 * JOB_BARS and done.attempts == 2
    for symbol, bars in job_source().items():
        assert stored(symbol) == source_rows(bars)
    # The three finished AAPL chunks were not fetched again.
    assert requested_windows(ingest_server) == [
        *(("AAPL", lo) for lo, _ in windows[3:]),
        *(("MSFT", lo) for lo, _ in windows),
    ]


@pytest.mark.django_db
def test_daily_chunks_starting_before_new_york_midnight_lose_no_bar(
    ingest_server: AlpacaServer, settings: Any
) -> None:
    from marketdata import services
    from marketdata.models import JobStatus

    settings.MARKETDATA_CHUNK_BARS = 10
    start = JOB_START + timedelta(hours=3)  # chunk boundaries at 03:00 UTC
    job = services.ingestion_job_create(
        provider="alpaca", symbols=["AAPL"], timeframe=Timeframe.DAY_1, start=start, end=job_end()
    )

    done = run_job(ingest_server, job.pk)

    assert done.status == JobStatus.SUCCEEDED
    assert stored("AAPL") == source_rows(job_source()["AAPL"])  # misses Jan 29, Feb 12, ...


def test_live_quotes_stream_by_polling_the_latest_quote(alpaca_server: AlpacaServer) -> None:
    naps: list[float] = []
    provider = alpaca_provider(alpaca_server, quote_poll_seconds=0.5, sleep=naps.append)
    t0 = datetime(2024, 7, 8, 14, 0, tzinfo=UTC)
    alpaca_server.set_quote("AAPL", bid=Decimal("227.01"), ask=Decimal("227.03"), t=t0)
    alpaca_server.set_quote("MSFT", bid=Decimal("466.5"), ask=Decimal("466.6"), bid_size=3, t=t0)
    stream = provider.stream_live_quotes(["aapl", "MSFT"])
    first = [next(stream), next(stream)]
    assert [(q.symbol, q.bid, q.ask, q.ts) for q in first] == [
        ("AAPL", Decimal("227.01"), Decimal("227.03"), t0),
        ("MSFT", Decimal("466.5"), Decimal("466.6"), t0),
    ]
    assert first[1].bid_size == Decimal(3)
    # An unchanged quote is not repeated; the next change arrives after one poll interval.
    alpaca_server.set_quote(
        "MSFT", bid=Decimal("466.4"), ask=Decimal("466.7"), t=t0 + timedelta(seconds=2)
    )
    changed = next(stream)
    assert (changed.symbol, changed.bid) == ("MSFT", Decimal("466.4")) and naps == [0.5]
    request = alpaca_server.requests.last(path="/v2/stocks/quotes/latest")
    assert (
        request is not None
        and request.query["symbols"] == "AAPL,MSFT"
        and request.query["feed"] == "iex"
    )


def test_live_quote_errors_are_provider_errors(alpaca_server: AlpacaServer) -> None:
    alpaca_server.faults.add(status=503, path_prefix="/v2/stocks/quotes")
    stream = alpaca_provider(alpaca_server, sleep=lambda _: None).stream_live_quotes(["AAPL"])
    with pytest.raises(RetryableProviderError, match="503"):
        next(stream)

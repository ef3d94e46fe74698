"""PolygonProvider (httpx) against the loopback Polygon server."""

from __future__ import annotations

import base64
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from common.ratelimit import LocalRateLimiter
from marketdata.domain import BarRecord, Timeframe
from marketdata.providers.base import FinalProviderError, RetryableProviderError
from marketdata.providers.resilient import RetryingProvider
from tests.support.fixtures import make_bars, polygon_provider
from tests.support.polygon_server import PolygonServer, to_millis

DAY = datetime(2024, 1, 2, tzinfo=UTC)
WEEK_END = datetime(2024, 1, 9, tzinfo=UTC)
AGGS = "/v2/aggs/ticker/"


def as_polygon(bars: list[BarRecord]) -> list[BarRecord]:
    return [replace(b, source="polygon") for b in bars]


class RecordingSleep:
    def __init__(self, real: bool = False) -> None:
        self.waits: list[float] = []
        self.real = real

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.real:
            time.sleep(seconds)


def retrying(inner: Any, *, sleep: RecordingSleep | None = None) -> RetryingProvider:
    return RetryingProvider(inner, attempts=3, max_wait=1.0, sleep=sleep or RecordingSleep())


@pytest.fixture
def paged_server(polygon_server: PolygonServer) -> PolygonServer:
    """47 five-minute AAPL aggregates served 10 per page: 5 pages."""
    polygon_server.page_cap = 10
    polygon_server.add_bars("AAPL", Timeframe.MIN_5, make_bars("AAPL", Timeframe.MIN_5, DAY, 47))
    return polygon_server


def get(server: PolygonServer, path: str, **params: Any) -> httpx.Response:
    params.setdefault("apiKey", server.api_key)
    return httpx.get(f"{server.url}{path}", params=params, timeout=5)


# -- protocol and data ---------------------------------------------------------------------


def test_pagination_returns_every_bar_once_and_in_order(paged_server: PolygonServer) -> None:
    expected = make_bars("AAPL", Timeframe.MIN_5, DAY, 47)

    bars = polygon_provider(paged_server).get_bars("AAPL", DAY, WEEK_END, Timeframe.MIN_5)

    assert bars == as_polygon(expected)
    log = paged_server.requests.all()
    assert len(log) == 5
    assert all(r.query.get("apiKey") == "test-polygon-key" for r in log)
    first = log[0]
    assert first.path == f"{AGGS}AAPL/range/5/minute/{to_millis(DAY)}/{to_millis(WEEK_END)}"
    assert first.query == {
        "adjusted": "true",
        "sort": "asc",
        "limit": "50000",
        "apiKey": "test-polygon-key",
    }


def test_next_url_is_followed_verbatim_plus_the_api_key(paged_server: PolygonServer) -> None:
    polygon_provider(paged_server).get_bars("AAPL", DAY, WEEK_END, Timeframe.MIN_5)

    for request in paged_server.requests.all()[1:]:
        assert "cursor" in request.query, f"cursor lost: {request.target}"
        assert request.query["apiKey"] == "test-polygon-key"


def test_next_url_has_polygons_shape(paged_server: PolygonServer) -> None:
    page = get(
        paged_server,
        f"{AGGS}AAPL/range/5/minute/2024-01-02/2024-01-08",
        limit=10,
        sort="asc",
        adjusted="true",
    ).json()

    assert page["status"] == "OK" and page["resultsCount"] == 10 and page["count"] == 10
    url = httpx.URL(page["next_url"])
    assert str(url).startswith(f"{paged_server.url}{AGGS}AAPL/range/5/minute/")
    assert url.path.split("/")[-2] == str(page["results"][-1]["t"] + 1)
    assert url.path.split("/")[-1] == "2024-01-08"
    assert "apiKey" not in url.params
    cursor = url.params["cursor"]
    decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    assert decoded == "limit=10&sort=asc&adjusted=true"

    following = get(paged_server, f"{url.path}?{url.query.decode()}").json()
    assert following["results"][0]["t"] > page["results"][-1]["t"]


def test_descending_pages_walk_back_in_time(paged_server: PolygonServer) -> None:
    key = {"apiKey": paged_server.api_key}
    url = httpx.URL(f"{paged_server.url}{AGGS}AAPL/range/5/minute/2024-01-02/2024-01-02")
    url = url.copy_merge_params({"sort": "desc", "limit": 20})
    times: list[int] = []
    while True:
        page = httpx.get(url.copy_merge_params(key), timeout=5).json()
        times += [row["t"] for row in page["results"]]
        if "next_url" not in page:
            break
        url = httpx.URL(page["next_url"])

    assert times == sorted(times, reverse=True)
    assert len(times) == len(set(times)) == 47
    assert paged_server.requests.count() == 5


def test_daily_aggregates_are_stamped_at_new_york_midnight(polygon_server: PolygonServer) -> None:
    daily = make_bars("MSFT", Timeframe.DAY_1, datetime(2024, 3, 7, tzinfo=UTC), 4)
    polygon_server.add_bars("MSFT", Timeframe.DAY_1, daily)
    stamps = [row["t"] for row in polygon_server.stored_bars("MSFT", (1, "day"))]
    assert [datetime.fromtimestamp(t / 1000, tz=UTC).hour for t in stamps] == [5, 5, 4, 4]

    bars = polygon_provider(polygon_server).get_bars(
        "MSFT", datetime(2024, 3, 7, tzinfo=UTC), datetime(2024, 3, 13, tzinfo=UTC), Timeframe.DAY_1
    )

    assert bars == as_polygon(daily)


def test_decimal_values_arrive_exactly(polygon_server: PolygonServer) -> None:
    ts = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    tricky = [
        BarRecord(
            "X",
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
            "X",
            Timeframe.MIN_1,
            ts + timedelta(minutes=1),
            Decimal("0.0001"),
            Decimal("0.0003"),
            Decimal("0.0001"),
            Decimal("0.0002"),
            Decimal("1234567890123.5"),
            vwap=None,
            trade_count=None,
        ),
    ]
    polygon_server.add_bars("X", Timeframe.MIN_1, tricky)

    bars = polygon_provider(polygon_server).get_bars("X", DAY, WEEK_END, Timeframe.MIN_1)

    assert bars == as_polygon(tricky)
    assert [str(b.high) for b in bars] == ["612399.99", "0.0003"]
    assert bars[1].volume == Decimal("1234567890123.5")


def test_dates_and_millisecond_bounds_select_the_same_bars(paged_server: PolygonServer) -> None:
    by_date = get(paged_server, f"{AGGS}AAPL/range/5/minute/2024-01-02/2024-01-02").json()
    start, end = to_millis(DAY), to_millis(DAY + timedelta(days=1)) - 1
    by_ms = get(paged_server, f"{AGGS}AAPL/range/5/minute/{start}/{end}").json()

    assert by_date["resultsCount"] == by_ms["resultsCount"] == 10  # page_cap
    assert by_date["results"] == by_ms["results"]


def test_an_empty_range_has_no_results_key(polygon_server: PolygonServer) -> None:
    page = get(polygon_server, f"{AGGS}AAPL/range/1/day/2024-01-02/2024-01-05").json()

    assert page["status"] == "OK" and page["resultsCount"] == 0
    assert "results" not in page and "next_url" not in page
    assert polygon_provider(polygon_server).get_bars("AAPL", DAY, WEEK_END, Timeframe.DAY_1) == []


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("AAPL/range/1/fortnight/2024-01-02/2024-01-05", {}, "timespan"),
        ("AAPL/range/x/day/2024-01-02/2024-01-05", {}, "multiplier"),
        ("AAPL/range/1/day/2024-01-02/soon", {}, "'to'"),
        ("AAPL/range/1/day/2024-02-30/2024-03-05", {}, "'from'"),
        ("AAPL/range/1/day/2024-01-02/2024-01-05", {"limit": "50001"}, "limit"),
        ("AAPL/range/1/day/2024-01-02/2024-01-05", {"sort": "sideways"}, "sort"),
        ("AAPL/range/1/day/2024-01-02/2024-01-05", {"cursor": "%%%"}, "cursor"),
    ],
)
def test_bad_parameters_get_400_with_polygons_error_shape(
    polygon_server: PolygonServer, path: str, params: dict[str, str], message: str
) -> None:
    response = get(polygon_server, AGGS + path, **params)

    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "ERROR" and body["request_id"]
    assert message in body["error"]


def test_the_api_key_is_checked(polygon_server: PolygonServer) -> None:
    path = f"{AGGS}AAPL/range/1/day/2024-01-02/2024-01-05"

    missing = httpx.get(f"{polygon_server.url}{path}", timeout=5)
    wrong = get(polygon_server, path, apiKey="nope")
    bearer = httpx.get(
        f"{polygon_server.url}{path}",
        timeout=5,
        headers={"Authorization": "Bearer test-polygon-key"},
    )

    assert missing.status_code == 401 and missing.json()["error"] == "API Key was not provided"
    assert wrong.status_code == 401 and wrong.json()["error"] == "Unknown API Key"
    assert bearer.status_code == 200


def test_delayed_status_is_accepted(paged_server: PolygonServer) -> None:
    paged_server.status = "DELAYED"

    bars = polygon_provider(paged_server).get_bars("AAPL", DAY, WEEK_END, Timeframe.MIN_5)

    assert len(bars) == 47


# -- errors and resilience -----------------------------------------------------------------


def test_a_wrong_key_is_a_final_error_and_not_retried(polygon_server: PolygonServer) -> None:
    sleep = RecordingSleep()
    provider = retrying(polygon_provider(polygon_server, api_key="wrong"), sleep=sleep)

    with pytest.raises(FinalProviderError, match=r"Polygon answered 401: .*Unknown API Key"):
        provider.get_bars("AAPL", DAY, WEEK_END, Timeframe.DAY_1)

    assert len(polygon_server.requests) == 1 and sleep.waits == []


def test_an_error_status_in_a_200_body_is_final(polygon_server: PolygonServer) -> None:
    polygon_server.faults.add(status=200, body={"status": "ERROR", "error": "ticker unknown"})

    with pytest.raises(FinalProviderError, match="ticker unknown"):
        retrying(polygon_provider(polygon_server)).get_bars("AAPL", DAY, WEEK_END, Timeframe.DAY_1)

    assert len(polygon_server.requests) == 1


def test_429_is_retried_after_the_servers_retry_after(paged_server: PolygonServer) -> None:
    paged_server.faults.add(status=429, retry_after=0.2, after=1)
    sleep = RecordingSleep(real=True)

    bars = retrying(polygon_provider(paged_server), sleep=sleep).get_bars(
        "AAPL", DAY, WEEK_END, Timeframe.MIN_5
    )

    assert bars == as_polygon(make_bars("AAPL", Timeframe.MIN_5, DAY, 47))
    assert sleep.waits == [pytest.approx(0.2)]
    log = paged_server.requests.all()
    assert [r.status for r in log] == [200, 429] + [200] * 5  # the retry starts over
    assert log[2].time - log[1].time >= 0.2


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried(paged_server: PolygonServer, status: int) -> None:
    paged_server.faults.add(status=status, times=2)
    sleep = RecordingSleep()

    bars = retrying(polygon_provider(paged_server), sleep=sleep).get_bars(
        "AAPL", DAY, WEEK_END, Timeframe.MIN_5
    )

    assert len(bars) == 47
    assert sleep.waits == [0.5, 1.0]
    assert [r.status for r in paged_server.requests][:3] == [status, status, 200]


def test_a_connection_reset_is_retried(paged_server: PolygonServer) -> None:
    paged_server.faults.add(reset=True)

    bars = retrying(polygon_provider(paged_server)).get_bars("AAPL", DAY, WEEK_END, Timeframe.MIN_5)

    assert len(bars) == 47
    log = paged_server.requests.all()
    assert log[0].fault == "reset" and log[0].status is None and len(log) == 6


def test_a_slow_answer_beyond_the_timeout_is_a_retryable_timeout(
    paged_server: PolygonServer,
) -> None:
    paged_server.faults.add(delay=1.0)
    provider = polygon_provider(paged_server, timeout=0.2)

    with pytest.raises(RetryableProviderError, match="ReadTimeout"):
        provider.get_bars("AAPL", DAY, WEEK_END, Timeframe.MIN_5)

    paged_server.faults.add(delay=1.0)
    assert len(retrying(provider).get_bars("AAPL", DAY, WEEK_END, Timeframe.MIN_5)) == 47


def test_the_rate_limiter_counts_every_page(paged_server: PolygonServer) -> None:
    clock = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    limiter = LocalRateLimiter(3, monotonic=lambda: clock[0], sleep=sleep)

    bars = polygon_provider(paged_server, rate_limiter=limiter).get_bars(
        "AAPL", DAY, WEEK_END, Timeframe.MIN_5
    )

    assert len(bars) == 47
    assert waits == [pytest.approx(20.0)] * 2  # 5 pages, burst of 3, then one per 20 s

"""Polygon.io aggregates: the second vendor, used as the automatic fallback."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from common.ratelimit import LocalRateLimiter, RateLimiter
from marketdata.domain import BarRecord, Timeframe, daily_ts
from marketdata.providers.base import DataProvider, FinalProviderError, RetryableProviderError
from marketdata.providers.http import retry_after_seconds
from quant.clock import ensure_utc

SPANS = {
    Timeframe.MIN_1: (1, "minute"),
    Timeframe.MIN_5: (5, "minute"),
    Timeframe.MIN_15: (15, "minute"),
    Timeframe.HOUR_1: (1, "hour"),
    Timeframe.DAY_1: (1, "day"),
}
RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}


class PolygonProvider(DataProvider):
    name = "polygon"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = "https://api.polygon.io",
        rate_limiter: RateLimiter | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not api_key:
            raise FinalProviderError("Polygon needs POLYGON_API_KEY")
        self.api_key = api_key
        self.limiter = rate_limiter or LocalRateLimiter(100)
        self.http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport)

    def get_bars(
        self, symbol: str, start: datetime, end: datetime, timeframe: Timeframe
    ) -> list[BarRecord]:
        start, end = ensure_utc(start), ensure_utc(end)
        multiplier, span = SPANS[timeframe]
        url: str | None = (
            f"/v2/aggs/ticker/{symbol}/range/{multiplier}/{span}/"
            f"{int(start.timestamp() * 1000)}/{int(end.timestamp() * 1000)}"
        )
        params: dict[str, Any] = {"adjusted": "true", "sort": "asc", "limit": 50_000}
        bars: list[BarRecord] = []
        while url:
            payload = self._get(url, params)
            bars.extend(_bar(symbol, timeframe, row) for row in payload.get("results") or [])
            url, params = payload.get("next_url"), {}
        return [b for b in bars if start <= b.ts <= end]

    def _get(self, url: str, params: dict[str, Any]) -> dict[str, Any]:
        self.limiter.acquire()
        parsed = httpx.URL(url)
        if parsed.query:
            # next_url carries Polygon's cursor in its query; httpx replaces a URL's query
            # when params are given, so merge them instead of losing the cursor.
            url, params = str(parsed.copy_with(query=None)), {**dict(parsed.params), **params}
        try:
            response = self.http.get(url, params={**params, "apiKey": self.api_key})
        except httpx.TransportError as error:
            raise RetryableProviderError(f"Polygon unreachable: {error!r}") from error
        if response.status_code in RETRYABLE_STATUS:
            raise RetryableProviderError(
                f"Polygon answered {response.status_code}: {response.text[:200]}",
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        if response.status_code != 200:
            raise FinalProviderError(
                f"Polygon answered {response.status_code}: {response.text[:200]}"
            )
        try:
            payload: dict[str, Any] = response.json()
        except ValueError as error:
            raise RetryableProviderError("Polygon sent a body that is not JSON") from error
        if payload.get("status") not in ("OK", "DELAYED"):
            raise FinalProviderError(
                f"Polygon status {payload.get('status')!r}: {payload.get('error', '')}"
            )
        return payload


def _bar(symbol: str, timeframe: Timeframe, row: dict[str, Any]) -> BarRecord:
    ts = datetime.fromtimestamp(int(row["t"]) / 1000, tz=UTC)
    return BarRecord(
        symbol=symbol,
        timeframe=timeframe,
        ts=daily_ts(ts) if timeframe is Timeframe.DAY_1 else ts,
        open=Decimal(str(row["o"])),
        high=Decimal(str(row["h"])),
        low=Decimal(str(row["l"])),
        close=Decimal(str(row["c"])),
        volume=Decimal(str(row["v"])),
        vwap=Decimal(str(row["vw"])) if row.get("vw") is not None else None,
        trade_count=int(row["n"]) if row.get("n") is not None else None,
        source="polygon",
    )

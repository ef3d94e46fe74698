"""Alpaca market data through alpaca-py's historical client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import requests
from alpaca.common.exceptions import APIError
from alpaca.data.enums import Adjustment, DataFeed
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest, StockLatestQuoteRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from common.ratelimit import LocalRateLimiter, RateLimiter
from marketdata.domain import BarRecord, Quote, Timeframe, daily_ts
from marketdata.providers.base import DataProvider, FinalProviderError, RetryableProviderError
from marketdata.providers.http import LimitedAdapter, retry_after_seconds
from quant.clock import ensure_utc

TIMEFRAMES = {
    Timeframe.MIN_1: TimeFrame(1, TimeFrameUnit.Minute),
    Timeframe.MIN_5: TimeFrame(5, TimeFrameUnit.Minute),
    Timeframe.MIN_15: TimeFrame(15, TimeFrameUnit.Minute),
    Timeframe.HOUR_1: TimeFrame(1, TimeFrameUnit.Hour),
    Timeframe.DAY_1: TimeFrame(1, TimeFrameUnit.Day),
}
RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}


class AlpacaProvider(DataProvider):
    name = "alpaca"

    def __init__(
        self,
        *,
        api_key: str,
        secret_key: str,
        data_url: str = "",
        feed: str = "iex",
        adjustment: str = "all",
        rate_limiter: RateLimiter | None = None,
        timeout: float = 30.0,
        quote_poll_seconds: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_key or not secret_key:
            raise FinalProviderError("Alpaca needs ALPACA_API_KEY and ALPACA_SECRET_KEY")
        self.client = StockHistoricalDataClient(
            api_key, secret_key, url_override=data_url or None, raw_data=True
        )
        # alpaca-py retries 429/504 itself with a fixed 3 s sleep and ignores Retry-After;
        # RetryingProvider owns retries, so the SDK's loop is switched off.
        self.client._retry = 0
        adapter = LimitedAdapter(rate_limiter or LocalRateLimiter(200), timeout)
        self.client._session.mount("http://", adapter)
        self.client._session.mount("https://", adapter)
        self.quote_poll_seconds = quote_poll_seconds
        self._sleep = sleep
        self.feed = DataFeed(feed)
        self.adjustment = Adjustment(adjustment)

    def get_bars(
        self, symbol: str, start: datetime, end: datetime, timeframe: Timeframe
    ) -> list[BarRecord]:
        request = StockBarsRequest(
            symbol_or_symbols=symbol,
            timeframe=TIMEFRAMES[timeframe],
            start=ensure_utc(start),
            end=ensure_utc(end),
            feed=self.feed,
            adjustment=self.adjustment,
        )
        raw = self._call(self.client.get_stock_bars, request)
        return [_bar(symbol, timeframe, row) for row in (raw or {}).get(symbol, [])]

    def stream_live_quotes(self, symbols: Sequence[str]) -> Iterator[Quote]:
        """Latest quotes by polling ``/v2/stocks/quotes/latest`` every ``quote_poll_seconds``.

        One request per round for all symbols (inside the rate budget); a quote is yielded
        when its timestamp changed. Errors surface as provider errors, like ``get_bars``.
        """
        wanted = [s.upper() for s in symbols]
        request = StockLatestQuoteRequest(symbol_or_symbols=wanted, feed=self.feed)
        seen: dict[str, str] = {}
        while True:
            raw = self._call(self.client.get_stock_latest_quote, request) or {}
            for symbol in wanted:
                row = raw.get(symbol)
                if not row or seen.get(symbol) == row.get("t"):
                    continue
                seen[symbol] = row["t"]
                yield _quote(symbol, row)
            self._sleep(self.quote_poll_seconds)

    def _call(self, method: Callable[[Any], Any], request: Any) -> Any:
        try:
            return method(request)
        except APIError as error:
            raise _map_api_error(error) from error
        except (requests.ConnectionError, requests.Timeout) as error:
            raise RetryableProviderError(f"Alpaca unreachable: {error}") from error
        except (requests.RequestException, ValueError, KeyError, TypeError) as error:
            # A 200 that is not Alpaca JSON (maintenance page, proxy): retry, then fall back.
            raise RetryableProviderError(f"Alpaca sent an unreadable answer: {error!r}") from error


def _map_api_error(error: APIError) -> Exception:
    status = error.status_code
    response = getattr(error, "_http_error", None)
    headers = (
        response.response.headers if response is not None and response.response is not None else {}
    )
    message = f"Alpaca answered {status}: {error}"
    if status in RETRYABLE_STATUS:
        return RetryableProviderError(
            message, retry_after=retry_after_seconds(headers.get("Retry-After"))
        )
    return FinalProviderError(message)


def _dec(value: Any) -> Decimal:
    return Decimal(str(value))


def _bar(symbol: str, timeframe: Timeframe, row: dict[str, Any]) -> BarRecord:
    ts = ensure_utc(datetime.fromisoformat(str(row["t"]).replace("Z", "+00:00")))
    return BarRecord(
        symbol=symbol,
        timeframe=timeframe,
        ts=daily_ts(ts) if timeframe is Timeframe.DAY_1 else ts,
        open=_dec(row["o"]),
        high=_dec(row["h"]),
        low=_dec(row["l"]),
        close=_dec(row["c"]),
        volume=_dec(row["v"]),
        vwap=_dec(row["vw"]) if row.get("vw") is not None else None,
        trade_count=int(row["n"]) if row.get("n") is not None else None,
        source="alpaca",
    )


def _quote(symbol: str, row: dict[str, Any]) -> Quote:
    return Quote(
        symbol=symbol,
        ts=ensure_utc(datetime.fromisoformat(str(row["t"]).replace("Z", "+00:00"))),
        bid=_dec(row["bp"]),
        ask=_dec(row["ap"]),
        bid_size=_dec(row["bs"]),
        ask_size=_dec(row["as"]),
    )

"""Wrappers that make any provider dependable: retries with back-off, and a fallback vendor."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential

from marketdata.domain import BarRecord, Quote, Timeframe
from marketdata.freshness import freshness
from marketdata.providers.base import (
    DataProvider,
    NotSupported,
    ProviderError,
    RetryableProviderError,
)
from quant.calendar import MarketCalendar
from quant.clock import Clock, SystemClock

log = structlog.get_logger(__name__)


class RetryingProvider(DataProvider):
    """Retries retryable errors with exponential back-off, honouring a server's Retry-After."""

    def __init__(
        self,
        inner: DataProvider,
        *,
        attempts: int = 5,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.attempts = attempts
        self._backoff = wait_exponential(multiplier=0.5, max=max_wait)
        self._max_wait = max_wait
        self._sleep = sleep

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryableProviderError) and error.retry_after is not None:
            return min(error.retry_after, self._max_wait)
        return float(self._backoff(state))

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "provider.retry", provider=self.name, attempt=state.attempt_number, error=str(error)
        )

    def get_bars(
        self, symbol: str, start: datetime, end: datetime, timeframe: Timeframe
    ) -> list[BarRecord]:
        kwargs: dict[str, Any] = {"sleep": self._sleep} if self._sleep else {}
        retrying = Retrying(
            retry=retry_if_exception_type(RetryableProviderError),
            stop=stop_after_attempt(self.attempts),
            wait=self._wait,
            before_sleep=self._log_retry,
            reraise=True,
            **kwargs,
        )
        return retrying(self.inner.get_bars, symbol, start, end, timeframe)

    def stream_live_quotes(self, symbols: Sequence[str]) -> Iterator[Quote]:
        return self.inner.stream_live_quotes(symbols)


class FallbackProvider(DataProvider):
    """Primary vendor first; the secondary when the primary fails or its data is stale.

    Stale means the range reaches the newest finished bar but the primary's last bar is
    older than the calendar says it should be: the secondary then fills in what is missing.
    """

    def __init__(
        self,
        primary: DataProvider,
        secondary: DataProvider,
        *,
        calendar: MarketCalendar | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.primary = primary
        self.secondary = secondary
        self.name = primary.name
        self.calendar = calendar or MarketCalendar()
        self.clock = clock or SystemClock()

    def stream_live_quotes(self, symbols: Sequence[str]) -> Iterator[Quote]:
        """The primary's stream; the secondary's when the primary has none."""
        try:
            return self.primary.stream_live_quotes(symbols)
        except NotSupported:
            return self.secondary.stream_live_quotes(symbols)

    def get_bars(
        self, symbol: str, start: datetime, end: datetime, timeframe: Timeframe
    ) -> list[BarRecord]:
        try:
            bars = self.primary.get_bars(symbol, start, end, timeframe)
        except ProviderError as error:
            log.warning(
                "provider.fallback",
                primary=self.primary.name,
                secondary=self.secondary.name,
                reason=str(error),
                symbol=symbol,
            )
            return self.secondary.get_bars(symbol, start, end, timeframe)
        state = freshness(
            calendar=self.calendar,
            timeframe=timeframe,
            last_bar=bars[-1].ts if bars else None,
            now=self.clock.now(),
        )
        if state.expected is None or state.expected > end or not state.is_stale:
            return bars
        log.warning(
            "provider.stale",
            primary=self.primary.name,
            secondary=self.secondary.name,
            symbol=symbol,
            last_bar=str(state.last_bar),
            expected=str(state.expected),
        )
        since = bars[-1].ts if bars else start
        try:
            extra = self.secondary.get_bars(symbol, since, end, timeframe)
        except ProviderError as error:
            log.warning(
                "provider.fallback_failed", secondary=self.secondary.name, reason=str(error)
            )
            return bars
        return bars + [b for b in extra if not bars or b.ts > since]

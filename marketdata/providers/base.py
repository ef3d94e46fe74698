"""The DataProvider interface every market-data source implements.

Required: ``name``, ``get_bars``. Optional: ``stream_live_quotes`` (raises
``NotSupported`` by default). Errors are ``RetryableProviderError`` (rate limits, 5xx,
timeouts, dropped connections: worth another try) or ``FinalProviderError`` (bad
credentials, unknown symbol: retrying cannot help).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from datetime import datetime

from marketdata.domain import BarRecord, Quote, Timeframe
from quant.errors import ApplicationError


class ProviderError(ApplicationError):
    code = "provider_error"
    http_status = 502


class RetryableProviderError(ProviderError):
    """A failure that may go away: rate limit, server error, timeout, dropped connection."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FinalProviderError(ProviderError):
    """A failure another try cannot fix: credentials, permissions, bad request."""


class NotSupported(ProviderError):
    code = "not_supported"
    http_status = 501


class DataProvider(ABC):
    name: str

    @abstractmethod
    def get_bars(
        self, symbol: str, start: datetime, end: datetime, timeframe: Timeframe
    ) -> list[BarRecord]:
        """Bars of ``symbol`` with start <= ts <= end, sorted by ts.

        Returns all bars of the range or raises: never a partial answer.
        """

    def stream_live_quotes(self, symbols: Sequence[str]) -> Iterator[Quote]:
        raise NotSupported(f"provider {self.name!r} has no live quote stream")

"""Market-data providers and the factory that builds them from settings."""

from __future__ import annotations

from functools import cache

import redis
from django.conf import settings

from common.ratelimit import LocalRateLimiter, RateLimiter, RedisRateLimiter
from marketdata.providers.base import (
    DataProvider,
    FinalProviderError,
    ProviderError,
    RetryableProviderError,
)
from marketdata.providers.resilient import FallbackProvider, RetryingProvider
from marketdata.providers.synthetic import SyntheticProvider
from quant.calendar import MarketCalendar
from quant.errors import ValidationError

PROVIDERS = ("synthetic", "alpaca", "polygon")

__all__ = [
    "PROVIDERS",
    "DataProvider",
    "FinalProviderError",
    "ProviderError",
    "RetryableProviderError",
    "build_provider",
    "default_provider",
]


@cache
def _limiter(name: str, per_minute: int) -> RateLimiter:
    """Shared across workers through Redis when REDIS_URL is set, per process otherwise."""
    if settings.REDIS_URL:
        return RedisRateLimiter(redis.Redis.from_url(settings.REDIS_URL), name, per_minute)
    return LocalRateLimiter(per_minute)


def _vendor(name: str) -> DataProvider:
    if name == "synthetic":
        return SyntheticProvider(
            seed=settings.MARKETDATA_SYNTHETIC_SEED, exchange=settings.MARKETDATA_EXCHANGE
        )
    if name == "alpaca":
        from marketdata.providers.alpaca import AlpacaProvider

        return AlpacaProvider(
            api_key=settings.ALPACA_API_KEY,
            secret_key=settings.ALPACA_SECRET_KEY,
            data_url=settings.ALPACA_DATA_URL,
            feed=settings.ALPACA_DATA_FEED,
            rate_limiter=_limiter("alpaca", settings.ALPACA_RATE_LIMIT_PER_MINUTE),
        )
    if name == "polygon":
        from marketdata.providers.polygon import PolygonProvider

        return PolygonProvider(
            api_key=settings.POLYGON_API_KEY,
            base_url=settings.POLYGON_BASE_URL,
            rate_limiter=_limiter("polygon", settings.POLYGON_RATE_LIMIT_PER_MINUTE),
        )
    raise ValidationError(f"unknown provider {name!r}: use one of {', '.join(PROVIDERS)}")


def build_provider(name: str, *, fallback: str | None = None) -> DataProvider:
    """A provider with retries, and with the fallback vendor behind it when one is named."""
    primary: DataProvider = RetryingProvider(_vendor(name))
    if fallback and fallback != name:
        return FallbackProvider(
            primary,
            RetryingProvider(_vendor(fallback)),
            calendar=MarketCalendar(settings.MARKETDATA_EXCHANGE),
        )
    return primary


def default_provider() -> DataProvider:
    return build_provider(
        settings.MARKETDATA_PROVIDER, fallback=settings.MARKETDATA_FALLBACK_PROVIDER or None
    )

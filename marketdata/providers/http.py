"""HTTP plumbing shared by vendor adapters: rate limit per request, default timeout."""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter

from common.ratelimit import RateLimiter


class LimitedAdapter(HTTPAdapter):
    """A requests adapter that waits for the rate limiter and applies a default timeout.

    alpaca-py pages through results inside one call; mounting this on its session counts
    every page against the vendor's limit, not only the first.
    """

    def __init__(self, limiter: RateLimiter, timeout: float) -> None:
        super().__init__()
        self.limiter = limiter
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.limiter.acquire()
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def retry_after_seconds(value: str | None) -> float | None:
    """Parse a Retry-After header given in seconds (the form Alpaca and Polygon use)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None

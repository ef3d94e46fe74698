"""Request-rate limits shared by every caller of an external API.

``LocalRateLimiter`` is a token bucket for one process; ``RedisRateLimiter`` counts requests
per minute in Redis so several workers together stay under a vendor limit (Alpaca: 200/min).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis


class RateLimiter(Protocol):
    def acquire(self) -> None:
        """Block until one more request is allowed."""
        ...


class LocalRateLimiter:
    """Token bucket: ``per_minute`` requests per minute, bursts up to ``per_minute``."""

    def __init__(
        self,
        per_minute: int,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._tokens = self.capacity
        self._monotonic = monotonic
        self._sleep = sleep
        self._stamp = monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self._monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1 - 1e-9:  # tolerance: float refill may land a hair below 1
                    self._tokens = max(0.0, self._tokens - 1)
                    return
                wait = (1 - self._tokens) / self.rate
            self._sleep(wait)


class RedisRateLimiter:
    """Fixed one-minute windows counted with INCR in Redis, shared across processes."""

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.name = name
        self.per_minute = per_minute
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> None:
        while True:
            now = self._clock()
            window = int(now // 60)
            key = f"ratelimit:{self.name}:{window}"
            pipe = self.client.pipeline()
            pipe.incr(key)
            pipe.expire(key, 120)
            count = int(pipe.execute()[0])
            if count <= self.per_minute:
                return
            self._sleep((window + 1) * 60 - now + 0.01)

"""Rate limiters: the in-process token bucket and the Redis window shared by all processes."""

from __future__ import annotations

import redis

from common.ratelimit import LocalRateLimiter, RedisRateLimiter


class FakeTime:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_token_bucket_allows_a_burst_then_paces_at_the_rate() -> None:
    clock = FakeTime()
    limiter = LocalRateLimiter(200, monotonic=clock, sleep=clock.sleep)
    for _ in range(200):
        limiter.acquire()
    assert clock.slept == []
    for _ in range(10):
        limiter.acquire()
    assert abs(sum(clock.slept) - 10 * 60 / 200) < 1e-6  # 0.3 s per request at 200/min


def test_redis_limiter_is_shared_between_instances(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    clock = FakeTime(start=60 * 50_000 + 1)
    first = RedisRateLimiter(client, "alpaca", 3, clock=clock, sleep=clock.sleep)
    second = RedisRateLimiter(client, "alpaca", 3, clock=clock, sleep=clock.sleep)
    first.acquire()
    second.acquire()
    first.acquire()
    assert clock.slept == []
    second.acquire()  # the fourth request in this minute waits for the next window
    assert len(clock.slept) == 1 and 58.9 < clock.slept[0] < 59.1
    other = RedisRateLimiter(client, "polygon", 3, clock=clock, sleep=clock.sleep)
    other.acquire()
    assert len(clock.slept) == 1

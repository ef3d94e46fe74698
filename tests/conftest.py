"""Suite-wide fixtures and the service policy.

Tests run against the database named by ``DATABASE_URL`` (``scripts/test.sh`` points it at the
local PostgreSQL server). When a service a test needs (PostgreSQL, Redis, chromium) is down, the
test is skipped on a developer machine and fails under ``CI=true``: CI must never go green by
skipping the real thing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.db import connections

pytest_plugins = ["tests.support.fixtures", "tests.support.dashboard"]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def service_unavailable(reason: str) -> None:
    """Skip locally, fail in CI."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: services are required, not optional)")
    pytest.skip(reason)


def _database_reachable() -> str | None:
    engine = settings.DATABASES["default"]["ENGINE"]
    if "sqlite" in engine:
        return None
    try:
        import psycopg

        db = settings.DATABASES["default"]
        psycopg.connect(
            host=db.get("HOST") or "127.0.0.1",
            port=int(db.get("PORT") or 5432),
            user=db.get("USER") or None,
            password=db.get("PASSWORD") or None,
            dbname="postgres",
            connect_timeout=3,
        ).close()
    except Exception as error:
        return f"PostgreSQL is not reachable: {error}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problem = _database_reachable()
    if problem is None or IN_CI:
        return  # in CI the database tests run and fail loudly on the connection error
    for item in items:
        if item.get_closest_marker("django_db") is not None or "db" in getattr(
            item, "fixturenames", ()
        ):
            item.add_marker(pytest.mark.skip(reason=problem))


@pytest.fixture
def on_postgres() -> bool:
    return connections["default"].vendor == "postgresql"


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A reachable Redis (database 15, flushed around the test)."""
    import redis

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        service_unavailable(f"Redis is not reachable at {url}: {error}")
    client.flushdb()
    yield url
    client.flushdb()
    client.close()

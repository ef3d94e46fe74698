"""Fixtures of the loopback vendor servers, loaded by ``tests/conftest.py`` (pytest_plugins).

- ``alpaca_server`` / ``polygon_server``: a started ``AlpacaServer`` / ``PolygonServer`` per
  test, stopped afterwards; a test fails if one of its handlers raised.
- ``alpaca_trading_server``: the same for ``AlpacaTradingServer`` (Alpaca's trading API).
- ``make_bars(symbol, timeframe, start, count)``: valid, deterministic ``BarRecord`` objects.
- ``alpaca_provider(server, ...)`` / ``polygon_provider(server, ...)``: our real providers
  wired to a loopback server (the alpaca-py client inside ``AlpacaProvider`` included).
- ``alpaca_broker(server, ...)``: our ``AlpacaBroker`` (alpaca-py's ``TradingClient`` inside)
  wired to an ``AlpacaTradingServer``.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from marketdata.domain import BarRecord, Timeframe
from marketdata.providers.alpaca import AlpacaProvider
from marketdata.providers.polygon import PolygonProvider
from marketdata.providers.synthetic import SyntheticProvider
from quant.clock import ManualClock, ensure_utc
from tests.support.alpaca_server import AlpacaServer
from tests.support.alpaca_trading import AlpacaTradingServer
from tests.support.loopback import LoopbackServer
from tests.support.polygon_server import PolygonServer
from trading.brokers.alpaca import AlpacaBroker

SESSION_MINUTES = 390


def make_bars(
    symbol: str,
    timeframe: Timeframe | str,
    start: datetime,
    count: int,
    *,
    seed: int = 42,
) -> list[BarRecord]:
    """The first ``count`` synthetic bars of ``symbol`` at or after ``start`` (aware).

    Same arguments, same bars: prices follow the exchange calendar (sessions only) and pass
    ``validate_bars``. Daily bars are stamped at the session date 00:00 UTC.
    """
    return list(_synthetic_bars(symbol, Timeframe(timeframe), ensure_utc(start), count, seed))


@functools.lru_cache(maxsize=256)
def _synthetic_bars(
    symbol: str, timeframe: Timeframe, start: datetime, count: int, seed: int
) -> tuple[BarRecord, ...]:
    per_session = max(1, SESSION_MINUTES // int(timeframe.duration.total_seconds() // 60))
    if timeframe is Timeframe.DAY_1:
        per_session = 1
    days = math.ceil(count / per_session) * 2 + 10
    end = start + timedelta(days=days)
    provider = SyntheticProvider(seed=seed, clock=ManualClock(end))
    bars = tuple(itertools.islice(provider.iter_bars(symbol, start, end, timeframe), count))
    if len(bars) < count:
        raise ValueError(f"only {len(bars)} synthetic bars of {symbol} after {start}")
    return bars


def alpaca_provider(server: AlpacaServer, **kwargs: Any) -> AlpacaProvider:
    """``AlpacaProvider`` against ``server``, with the server's credentials unless given."""
    options: dict[str, Any] = {
        "api_key": server.api_key,
        "secret_key": server.secret_key,
        "data_url": server.url,
        "timeout": 5.0,
    }
    options.update(kwargs)
    return AlpacaProvider(**options)


def alpaca_broker(server: AlpacaTradingServer, **kwargs: Any) -> AlpacaBroker:
    """``AlpacaBroker`` (paper) against ``server``, with the server's credentials unless given;
    a short timeout so "the answer never came" tests stay fast."""
    options: dict[str, Any] = {
        "api_key": server.api_key,
        "secret_key": server.secret_key,
        "url_override": server.url,
        "timeout": 2.0,
    }
    options.update(kwargs)
    return AlpacaBroker(**options)


def polygon_provider(server: PolygonServer, **kwargs: Any) -> PolygonProvider:
    """``PolygonProvider`` against ``server``, with the server's API key unless given."""
    options: dict[str, Any] = {"api_key": server.api_key, "base_url": server.url, "timeout": 5.0}
    options.update(kwargs)
    return PolygonProvider(**options)


def _serve(server: LoopbackServer) -> Iterator[Any]:
    with server:
        yield server
    if server.handler_errors:
        pytest.fail(f"{type(server).__name__} handler raised: {server.handler_errors!r}")


@pytest.fixture
def alpaca_server() -> Iterator[AlpacaServer]:
    """Alpaca's market-data API on 127.0.0.1; key ``test-key``, secret ``test-secret``."""
    yield from _serve(AlpacaServer())


@pytest.fixture
def alpaca_trading_server() -> Iterator[AlpacaTradingServer]:
    """Alpaca's trading API (and market data) on 127.0.0.1; key ``test-key``, secret
    ``test-secret``, $100,000 cash, market orders filled at once at ``set_price``."""
    yield from _serve(AlpacaTradingServer())


@pytest.fixture
def polygon_server() -> Iterator[PolygonServer]:
    """Polygon's aggregates API on 127.0.0.1; API key ``test-polygon-key``."""
    yield from _serve(PolygonServer())


def current_database_url() -> str:
    """A ``DATABASE_URL`` naming the database this test runs on, for a process the test starts
    (a command, a Celery worker): it sees what the test committed."""
    from django.db import connections

    db = connections["default"].settings_dict
    if connections["default"].vendor != "postgresql":
        return f"sqlite:///{db['NAME']}"
    auth = f"{db['USER'] or ''}:{db['PASSWORD']}@" if db.get("PASSWORD") else f"{db['USER'] or ''}@"
    return f"postgres://{auth}{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def benchmark_database_url(suffix: str) -> str:
    """A PostgreSQL URL for a benchmark's own database, named after this run's test database
    (``<test database>_<suffix>``: the benchmark empties its tables, and parallel runs sharing
    the server, each with its own TEST_DATABASE_NAME, never drop each other's). Skips on
    SQLite: the benchmarks measure PostgreSQL."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        pytest.skip("the benchmark measures PostgreSQL")
    test_name = (db.get("TEST") or {}).get("NAME") or f"test_{db['NAME']}"
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgres://{db['USER'] or 'postgres'}@{host}/{test_name}_{suffix}"

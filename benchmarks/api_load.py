"""REST API under load: ``/v1/metrics/summary``, ``/v1/positions`` and ``/v1/orders`` on
PostgreSQL with 10,000 positions, 100,000 orders and 1,000 backtest runs.

    .venv/bin/python benchmarks/api_load.py                      # make bench-api
    .venv/bin/python benchmarks/api_load.py --seconds 5          # a quick check
    .venv/bin/python benchmarks/api_load.py --json var/api_load.json

Set-up (not timed)
------------------
A database of its own (``quant_bench_api`` by default, created when missing) is migrated and
refilled: 20 paper strategies, 500 instruments with 5 daily bars each, 10,000 open positions
(500 per strategy), 100,000 filled orders with one fill each (over the last year), 1,000
finished backtest runs, an hourly account equity curve over the last year, one viewer user.
The web server is the production one (``daphne config.asgi:application``, ``DEBUG`` off) in a
process of its own on 127.0.0.1, with the API rate limits turned off (they would answer 429).

Load
----
For each endpoint, ``--clients`` (default 50) concurrent clients on one ``httpx.AsyncClient``
each send a request, wait for the answer and pause so that each sends at most ``--rate``
requests per second (default 1: 50 requests/s offered to the endpoint, where 50 dashboards
polling all three endpoints every 5 s would send 30/s to the three together). This is the
*bounded* load: latency at a given offered rate. A second, *saturating* pass drops the pauses (closed loop: the next
request leaves as soon as the answer arrives), which shows the server's throughput; there,
latency is clients / throughput by Little's law. Every answer must be 200 with a ``data``
key. The first ``--warmup`` seconds of each pass are not counted.

The goal (issue 7): p99 under 50 ms at 50 concurrent clients, for the bounded pass. The client
and the server share the machine's cores: the figures include that contention.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/quant_bench_api"
GOAL_P99_MS = 50.0
ENDPOINTS = {
    "metrics_summary": "/v1/metrics/summary?period=1m&mode=paper",
    "positions": "/v1/positions?mode=paper&per_page=50",
    "orders": "/v1/orders?mode=paper&per_page=50",
}
STRATEGIES, POSITIONS_PER_STRATEGY = 20, 500
ORDERS, RUNS = 100_000, 1_000
PASSWORD = "bench-password-not-secret"


def percentile(ordered: list[float], p: float) -> float:
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[rank]


def seed(scale: float = 1.0) -> dict[str, int]:
    """Empty and refill the tables the three endpoints read (bulk inserts); ``scale`` < 1
    shrinks every count (the suite's smoke run)."""
    from django.contrib.auth.models import User
    from django.db import connection, transaction
    from django.utils import timezone

    from backtests.models import BacktestRun
    from marketdata.models import Bar, Instrument
    from quant.strategies.config import config_validate
    from research.models import Strategy, StrategyMode
    from research.services import strategy_version_ensure
    from trading.models import AccountSnapshot, Fill, Order, Position

    strategies_n = max(1, round(STRATEGIES * scale))
    per_strategy = max(1, round(POSITIONS_PER_STRATEGY * scale))
    orders_n, runs_n = max(1, round(ORDERS * scale)), max(1, round(RUNS * scale))
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE trading_fill, trading_orderevent, trading_order, trading_position, "
            "trading_accountsnapshot, backtests_backtesttrade, backtests_backtestrun, "
            "marketdata_bar RESTART IDENTITY CASCADE"
        )
    symbols = [f"B{i:03d}" for i in range(per_strategy)]
    with transaction.atomic():
        strategies = []
        for s in range(strategies_n):
            config = config_validate(
                {
                    "name": f"bench_{s:02d}",
                    "class": "sma_crossover",
                    "symbols": ["SPY"],
                    "params": {"fast": 3, "slow": 8},
                }
            )
            version, _ = strategy_version_ensure(config=config, source="file")
            Strategy.objects.filter(pk=version.strategy_id).update(
                mode=StrategyMode.PAPER, reviewed_at=now
            )
            strategies.append(version.strategy)
        instruments = [Instrument.objects.get_or_create(symbol=sym)[0] for sym in symbols]
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        Bar.objects.bulk_create(
            [
                Bar(
                    instrument=inst,
                    timeframe="1Day",
                    ts=day - timedelta(days=d),
                    open=Decimal("100"),
                    high=Decimal("101"),
                    low=Decimal("99"),
                    close=Decimal("100") + d,
                    volume=Decimal("1000000"),
                )
                for inst in instruments
                for d in range(1, 6)
            ],
            batch_size=5000,
        )
        Position.objects.bulk_create(
            [
                Position(
                    strategy=strategy,
                    mode="paper",
                    symbol=sym,
                    quantity=Decimal(10 + i % 7),
                    avg_price=Decimal("98.5"),
                    realized_pnl=Decimal("3.25"),
                    last_fill_at=now,
                )
                for strategy in strategies
                for i, sym in enumerate(symbols)
            ],
            batch_size=5000,
        )
        span = 365 * 24 * 3600
        orders = [
            Order(
                strategy=strategies[i % strategies_n],
                mode="paper",
                broker="simulated",
                client_order_id=f"bench-{i}",
                broker_order_id=f"sim-{i}",
                symbol=symbols[i % per_strategy],
                side="buy" if i % 2 == 0 else "sell",
                quantity=Decimal("10"),
                filled_quantity=Decimal("10"),
                avg_fill_price=Decimal("100"),
                opening=i % 2 == 0,
                source="strategy",
                status="filled",
                created_at=now - timedelta(seconds=span * i / orders_n),
                closed_at=now - timedelta(seconds=span * i / orders_n),
            )
            for i in range(orders_n)
        ]
        Order.objects.bulk_create(orders, batch_size=5000)
        Fill.objects.bulk_create(
            [
                Fill(
                    order=o,
                    broker_fill_id=f"{o.broker_order_id}:10",
                    strategy_id=o.strategy_id,
                    mode="paper",
                    symbol=o.symbol,
                    side=o.side,
                    quantity=Decimal("10"),
                    price=Decimal("100"),
                    commission=Decimal("1"),
                    closed_quantity=Decimal("0") if o.opening else Decimal("10"),
                    realized_pnl=Decimal("-1") if o.opening else Decimal(12 - 20 * (i % 6 == 1)),
                    ts=o.created_at,
                )
                for i, o in enumerate(orders)
            ],
            batch_size=5000,
        )
        AccountSnapshot.objects.bulk_create(
            [
                AccountSnapshot(
                    mode="paper",
                    broker="simulated",
                    equity=Decimal(100_000 + (h % 500) * 3 + h // 10),
                    cash=Decimal("50000"),
                    buying_power=Decimal("50000"),
                    ts=now - timedelta(hours=h),
                )
                for h in range(365 * 24)
            ],
            batch_size=5000,
        )
        BacktestRun.objects.bulk_create(
            [
                BacktestRun(
                    strategy=strategies[r % strategies_n],
                    strategy_version=strategies[r % strategies_n].current_version,
                    status="succeeded",
                    progress=1.0,
                    strategy_config={"name": strategies[r % strategies_n].name},
                    backtest_config={},
                    symbols=["SPY"],
                    timeframe="1Day",
                    metrics={"sharpe_ratio": "1.1"},
                    final_equity=Decimal("101000"),
                    total_trades=12,
                )
                for r in range(runs_n)
            ],
            batch_size=1000,
        )
        User.objects.filter(username="bench_viewer").delete()
        User.objects.create_user("bench_viewer", password=PASSWORD)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {
        "positions": Position.objects.count(),
        "orders": Order.objects.count(),
        "fills": Fill.objects.count(),
        "runs": BacktestRun.objects.count(),
        "account_snapshots": AccountSnapshot.objects.count(),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(database_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "API_RATE_LIMIT_USER_PER_MINUTE": "0",
        "API_RATE_LIMIT_IP_PER_MINUTE": "0",
        "API_RATE_LIMIT_LOGIN_PER_MINUTE": "0",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("REDIS_URL", None)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "config.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"daphne exited: {server.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("daphne did not start listening within 60 s")


@dataclass
class Pass:
    endpoint: str
    mode: str
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        return {
            "endpoint": self.endpoint,
            "mode": self.mode,
            "requests": len(ordered),
            "p50_ms": round(percentile(ordered, 50), 2),
            "p99_ms": round(percentile(ordered, 99), 2),
            "max_ms": round(ordered[-1], 2) if ordered else None,
            "requests_per_s": round(len(ordered) / self.seconds, 1) if self.seconds else 0.0,
            "errors": len(self.errors),
        }


async def load(
    base: str,
    token: str,
    endpoint: str,
    url: str,
    *,
    clients: int,
    rate: float | None,
    seconds: float,
    warmup: float,
) -> Pass:
    import httpx

    result = Pass(endpoint, "bounded" if rate else "saturating")
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    loop = asyncio.get_running_loop()
    began = loop.time()
    counted_from, stop_at = began + warmup, began + warmup + seconds

    async def client(http: httpx.AsyncClient, index: int) -> None:
        if rate:  # spread the clients' first requests over one pacing interval
            await asyncio.sleep(index / clients / rate)
        while True:
            sent = loop.time()
            if sent >= stop_at:
                return
            response = await http.get(url)
            done = loop.time()
            if response.status_code != 200 or "data" not in response.json():
                result.errors.append(f"{response.status_code}: {response.text[:200]}")
            elif sent >= counted_from:
                result.latencies_ms.append((done - sent) * 1000)
            if rate:
                await asyncio.sleep(max(0.0, 1 / rate - (done - sent)))

    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as http:
        await asyncio.gather(*(client(http, i) for i in range(clients)))
    result.seconds = min(loop.time(), stop_at + 30) - counted_from
    return result


def login(base: str) -> str:
    import httpx

    response = httpx.post(
        f"{base}/v1/auth/login", json={"username": "bench_viewer", "password": PASSWORD}, timeout=30
    )
    response.raise_for_status()
    return str(response.json()["data"]["access_token"])


def table(passes: list[Pass]) -> list[str]:
    rows = [
        "| endpoint | load | requests | p50 ms | p99 ms | max ms | requests/s | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for p in passes:
        f = p.figures()
        rows.append(
            f"| `{ENDPOINTS[p.endpoint].split('?')[0]}` | {f['mode']} | {f['requests']:,} | "
            f"{f['p50_ms']:.2f} | {f['p99_ms']:.2f} | {f['max_ms']} | {f['requests_per_s']:.1f} | "
            f"{f['errors']} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument(
        "--rate", type=float, default=1.0, help="requests/s per client, bounded pass"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="counted seconds per pass")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--no-saturating", action="store_true", help="skip the closed-loop pass")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="shrink the seeded rows (0.01: a smoke run)"
    )
    args = parser.parse_args()
    if not args.database_url.startswith("postgres"):
        raise SystemExit("the benchmark measures PostgreSQL: pass a postgres:// --database-url")
    if args.clients < 1 or args.seconds <= 0 or args.rate <= 0:
        raise SystemExit("--clients, --seconds and --rate must be positive")

    from tests.support.postgres import benchmark_django_setup

    version = benchmark_django_setup(args.database_url, production=True)
    began = time.perf_counter()
    counts = seed(args.scale)
    seeded_s = time.perf_counter() - began
    print(
        f"PostgreSQL {version}, Python {platform.python_version()}, {os.cpu_count()} cores; "
        f"seeded in {seeded_s:.1f} s: " + ", ".join(f"{v:,} {k}" for k, v in counts.items())
    )
    # The load generator is this process, which holds Django and the seeding's garbage: collect
    # it now and keep the collector's pauses out of the measured latencies.
    gc.collect()
    gc.freeze()
    gc.disable()
    port = free_port()
    server = start_server(args.database_url, port)
    base = f"http://127.0.0.1:{port}"
    passes: list[Pass] = []
    try:
        token = login(base)
        modes: list[float | None] = [args.rate] + ([] if args.no_saturating else [None])
        for rate in modes:
            for name, url in ENDPOINTS.items():
                passes.append(
                    asyncio.run(
                        load(
                            base,
                            token,
                            name,
                            url,
                            clients=args.clients,
                            rate=rate,
                            seconds=args.seconds,
                            warmup=args.warmup,
                        )
                    )
                )
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    print(
        f"daphne (1 process) on 127.0.0.1, {args.clients} concurrent clients; bounded: at most "
        f"{args.rate:g} requests/s per client ({args.clients * args.rate:g}/s offered); "
        f"saturating: no pause. {args.seconds:g} s counted per pass after {args.warmup:g} s."
    )
    for row in table(passes):
        print(row)
    bounded = [p.figures() for p in passes if p.mode == "bounded"]
    worst = max(f["p99_ms"] for f in bounded)
    failed = sum(f["errors"] for f in (p.figures() for p in passes))
    verdict = "PASS" if worst < GOAL_P99_MS and not failed else "FAIL"
    print(
        f"worst bounded p99 {worst:.2f} ms (goal < {GOAL_P99_MS:g} ms), errors {failed}: {verdict}"
    )
    figures = {
        "counts": counts,
        "clients": args.clients,
        "rate_per_client": args.rate,
        "passes": [p.figures() for p in passes],
        "worst_bounded_p99_ms": worst,
        "verdict": verdict,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures))
    if failed:
        raise SystemExit(f"{failed} requests failed: {passes[0].errors[:3]}")


if __name__ == "__main__":
    main()

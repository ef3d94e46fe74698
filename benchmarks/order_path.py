"""Order path latency: the risk gateway alone, then signal → broker acknowledgement, on PostgreSQL.

    .venv/bin/python benchmarks/order_path.py                  # 10,000 orders (make bench-orders)
    .venv/bin/python benchmarks/order_path.py --orders 500     # a quick check
    .venv/bin/python benchmarks/order_path.py --json var/order_path.json
    .venv/bin/python benchmarks/order_path.py --risk-check-only    # phase 1 alone

Set-up (not timed)
------------------
The benchmark uses a database of its own (``quant_bench_orders`` by default, created when
missing), migrates it (the risk migrations store the default limits and the global kill-switch
row), empties the trading app's tables and the bars (nothing left from an earlier run), and builds
what the trading tests build (``tests/trading/factories.py``): one reviewed ``sma_crossover``
strategy in paper mode over ``--positions`` symbols (default 5), 30 daily bars of each at
$100 with 5M shares a day, an account snapshot of $100,000, and a position of 10 shares in
every symbol (so the gateway marks a small book to market, as it would in production).

Orders are market orders for 1 share, cycling through the symbols and alternating buy / sell:
a buy adds to the position (an opening order, every check runs), the sell that follows takes
it back (a closing order). Positions stay between 10 and 11 shares, so the book the gateway
reads does not grow during the run; in production a strategy's book is bounded by its limits
too. The database tables of orders, events and fills do grow (that is the real behaviour); the
first and last tenth of each phase are printed so a slowdown would show.

Phases
------
1. **risk check**: ``order_risk_check(order, clock)`` inside ``transaction.atomic()``, as
   ``order_place`` runs it (the kill-switch lock taken shared, the limits read from the database
   on every check, no caching), for PENDING orders created beforehand with ``order_create``.
   The timing covers BEGIN, the check and COMMIT. Every verdict must be an approval.
2. **signal → broker acknowledgement**: ``order_submit(...)`` end to end: ``order_create``, the
   gateway inside ``order_place``'s transaction, ``AlpacaBroker`` (alpaca-py's ``TradingClient``)
   → HTTP → the loopback Alpaca trading server (``tests/support/alpaca_trading.py``) in this
   process on 127.0.0.1, which fills the market order at once → the report applied (fill,
   position, status). Every order must end FILLED. The broker gets a ``LocalRateLimiter`` with a
   budget that never throttles: the real 200 requests/min would hold 10,000 orders for 50
   minutes. The loopback server forgets its filled orders as the run goes (it scans its whole
   book on every order placed, which Alpaca does not). The process's first-order
   reconciliation runs once before the timed loop.
3. **the same with the ``SimulatedBroker``** (the embedded paper default): the venue's book
   lives in this database and is worked under a lock on its account row, in asgiref's shared
   thread with a connection of its own (opened and closed by each broker call, as in
   production: the interface is async, ``order_submit`` calls it from sync code). Market
   orders fill at once on the latest finished bar (the flat daily bars). Every order must end
   FILLED. The venue's book is not reconciled with ours (phase 2 did this process's
   reconciliation; the venue starts flat while the strategy holds 10 shares per symbol).

Each phase runs in one thread, one order at a time, after 20 untimed warm-up orders over which
the SQL statements per order are counted (on the order service's connection: the simulated
venue's own statements are not in that count). The table is Markdown, ready for the README;
the last line is JSON for scripts (``--json OUT`` writes the same figures to a file).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/quant_bench_orders"
SYMBOLS = ["BOA", "BOB", "BOC", "BOD", "BOE", "BOF", "BOG", "BOH", "BOI", "BOJ"]
PRICE = Decimal("100")
HELD = Decimal("10")
EQUITY = Decimal("100000")
WARMUP = 20
UNTHROTTLED_PER_MINUTE = 1_000_000_000
RISK_CHECK_GOAL_P99_MS = 5.0


@dataclass(frozen=True)
class Phase:
    name: str
    label: str
    latencies_ms: list[float]
    seconds: float
    statements: float
    """SQL statements per order on this thread's connection (BEGIN and COMMIT included),
    counted over the warm-up."""

    def figures(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        tenth = max(1, len(self.latencies_ms) // 10)
        return {
            "orders": len(ordered),
            "p50_ms": round(percentile(ordered, 50), 3),
            "p99_ms": round(percentile(ordered, 99), 3),
            "max_ms": round(ordered[-1], 3),
            "mean_ms": round(sum(ordered) / len(ordered), 3),
            "per_s": round(len(ordered) / self.seconds, 1),
            "seconds": round(self.seconds, 3),
            "sql_statements_per_order": round(self.statements, 1),
            "p50_first_tenth_ms": round(percentile(sorted(self.latencies_ms[:tenth]), 50), 3),
            "p50_last_tenth_ms": round(percentile(sorted(self.latencies_ms[-tenth:]), 50), 3),
        }


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted values (p99 of 10,000 is the 9,900th)."""
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def warm_up(run: Callable[[T], None], items: list[T]) -> float:
    """``run`` each item untimed; returns the SQL statements each one sent on average."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        for item in items:
            run(item)
    return len(queries.captured_queries) / len(items)


def empty_trading_tables() -> None:
    """Start from no orders, fills, positions or snapshots (and no bars): a previous run's rows
    would make this one's figures depend on how many runs came before."""
    from django.apps import apps
    from django.db import connection

    from marketdata.models import Bar

    tables = [model._meta.db_table for model in apps.get_app_config("trading").get_models()]
    tables.append(Bar._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"TRUNCATE {', '.join(connection.ops.quote_name(t) for t in tables)} CASCADE"
        )


def symbols_for(count: int) -> list[str]:
    if not 1 <= count <= len(SYMBOLS):
        raise SystemExit(f"--positions must be between 1 and {len(SYMBOLS)}")
    return SYMBOLS[:count]


def set_up(symbols: list[str]) -> Any:
    """The strategy, prices, account snapshot and positions (see the module docstring)."""
    from tests.trading.factories import account, flat_prices, paper_strategy
    from trading.models import Position

    strategy = paper_strategy("bench_order_path", symbols=tuple(symbols))
    for symbol in symbols:
        flat_prices(symbol, price=str(PRICE))
        Position.objects.create(
            strategy=strategy, mode="paper", symbol=symbol, quantity=HELD, avg_price=PRICE
        )
    account("paper", equity=str(EQUITY), cash=str(EQUITY - HELD * PRICE * len(symbols)))
    return strategy


def order_plan(symbols: list[str], count: int) -> list[tuple[str, str]]:
    """(symbol, side) for each order: buy then sell 1 share of each symbol in turn."""
    plan = []
    for i in range(count):
        pair, side = divmod(i, 2)
        plan.append((symbols[pair % len(symbols)], "buy" if side == 0 else "sell"))
    return plan


def run_risk_checks(strategy: Any, symbols: list[str], orders: int) -> Phase:
    from django.db import transaction

    from quant.clock import SystemClock
    from risk.gateway import order_risk_check
    from trading.models import Order
    from trading.services.orders import order_create

    clock = SystemClock()
    pending = [
        order_create(
            strategy=strategy,
            mode="paper",
            broker="alpaca",
            symbol=symbol,
            side=side,
            quantity=Decimal("1"),
            opening=side == "buy",  # 10 shares held: a buy adds to it, a sell of 1 reduces it
            clock=clock,
        )
        for symbol, side in order_plan(symbols, WARMUP + orders)
    ]
    refused: list[str] = []

    def check(order: Order) -> None:
        with transaction.atomic():
            verdict = order_risk_check(order, clock)
        if not verdict.approved:
            refused.append(f"{order.side} {order.symbol}: {verdict.reason}")

    statements = warm_up(check, pending[:WARMUP])
    latencies = []
    began = time.perf_counter()
    for order in pending[WARMUP:]:
        start = time.perf_counter()
        check(order)
        latencies.append((time.perf_counter() - start) * 1000)
    seconds = time.perf_counter() - began
    if refused:
        raise SystemExit(f"the gateway refused {len(refused)} orders, e.g. {refused[0]}")
    # They never left: remove them so the next phase's reconciliation sees no open orders.
    Order.objects.filter(pk__in=[o.pk for o in pending]).delete()
    return Phase("risk_check", "risk check (`order_risk_check`)", latencies, seconds, statements)


def trading_server_class() -> type[Any]:
    from tests.support.alpaca_trading import AlpacaTradingServer

    class BenchTradingServer(AlpacaTradingServer):
        """The loopback server, with a way to drop what a long run piles up."""

        def forget_closed(self) -> None:
            """Drop filled/cancelled orders and the request log: every POST /v2/orders scans
            the whole book (client_order_id uniqueness, buying power), which Alpaca does not."""
            with self._lock:
                self._orders = {k: o for k, o in self._orders.items() if o.is_open}
                self._served.clear()
                self._fills.clear()
            self.requests.clear()

    return BenchTradingServer


def run_submits(
    strategy: Any,
    symbols: list[str],
    orders: int,
    broker: Any,
    *,
    after_each: Callable[[], None],
    name: str,
    label: str,
    reconcile_first: bool = False,
) -> Phase:
    from quant.clock import SystemClock
    from trading.models import Position
    from trading.services.reconcile import reconcile
    from trading.services.submit import order_submit

    clock = SystemClock()
    if reconcile_first:  # the process's first order would do it
        run = reconcile(mode="paper", broker=broker, clock=clock)
        if not run.matched:
            raise SystemExit(f"reconciliation before the run disagrees: {run.discrepancies}")
    failed: list[str] = []

    def submit(symbol: str, side: str) -> None:
        order = order_submit(
            strategy=strategy,
            mode="paper",
            broker=broker,
            symbol=symbol,
            side=side,
            quantity=Decimal("1"),
            clock=clock,
            sleep=lambda _: None,
        )
        if order.status != "filled":
            failed.append(f"{side} {symbol}: {order.status} {order.reject_reason}")
        after_each()

    plan = order_plan(symbols, WARMUP + orders)
    statements = warm_up(lambda item: submit(*item), plan[:WARMUP])
    latencies = []
    began = time.perf_counter()
    for symbol, side in plan[WARMUP:]:
        start = time.perf_counter()
        submit(symbol, side)
        latencies.append((time.perf_counter() - start) * 1000)
    seconds = time.perf_counter() - began
    if failed:
        raise SystemExit(f"{len(failed)} orders did not fill, e.g. {failed[0]}")
    held = set(Position.objects.filter(strategy=strategy).values_list("quantity", flat=True))
    if not held <= {HELD, HELD + 1}:
        raise SystemExit(f"positions drifted: {sorted(held)}")
    return Phase(name, label, latencies, seconds, statements)


def run_alpaca(strategy: Any, symbols: list[str], orders: int) -> Phase:
    from common.ratelimit import LocalRateLimiter
    from trading.brokers.alpaca import AlpacaBroker
    from trading.brokers.sync import call

    server = trading_server_class()(cash=EQUITY - HELD * PRICE * len(symbols))
    with server:
        for symbol in symbols:
            server.set_price(symbol, PRICE)
            server.set_position(symbol, HELD, PRICE)
        broker = AlpacaBroker(
            api_key=server.api_key,
            secret_key=server.secret_key,
            paper=True,
            url_override=server.url,
            rate_limiter=LocalRateLimiter(UNTHROTTLED_PER_MINUTE),
        )
        try:
            phase = run_submits(
                strategy,
                symbols,
                orders,
                broker,
                after_each=server.forget_closed,
                name="submit_alpaca",
                label="signal → ack (`order_submit`, AlpacaBroker, loopback)",
                reconcile_first=True,
            )
        finally:
            call(broker.close())
        if server.handler_errors:
            raise SystemExit(f"the loopback server raised: {server.handler_errors!r}")
    return phase


def run_simulated(strategy: Any, symbols: list[str], orders: int) -> Phase:
    """``order_submit`` to the ``SimulatedBroker``: the venue's book in this database, market
    orders filled at once on the latest finished bar (the flat daily bars)."""
    from trading.brokers.simulated import SimulatedBroker

    broker = SimulatedBroker(account="bench_order_path")
    return run_submits(
        strategy,
        symbols,
        orders,
        broker,
        after_each=lambda: None,
        name="submit_simulated",
        label="signal → ack (`order_submit`, SimulatedBroker)",
    )


def table(phases: list[Phase]) -> list[str]:
    rows = [
        "| phase | orders | p50 ms | p99 ms | max ms | per second | p50 first / last tenth ms "
        "| SQL per order |",
        "|:---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for phase in phases:
        f = phase.figures()
        rows.append(
            f"| {phase.label} | {f['orders']:,} | {f['p50_ms']:.2f} | {f['p99_ms']:.2f} "
            f"| {f['max_ms']:.2f} | {f['per_s']:,.0f} "
            f"| {f['p50_first_tenth_ms']:.2f} / {f['p50_last_tenth_ms']:.2f} "
            f"| {f['sql_statements_per_order']:g} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=10_000, help="timed orders per phase")
    parser.add_argument("--positions", type=int, default=5, help="symbols held (1..10)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--risk-check-only",
        action="store_true",
        help="time only phase 1, the risk check (a minute instead of half an hour)",
    )
    args = parser.parse_args()
    if args.orders < 1:
        raise SystemExit("--orders must be at least 1")
    if not args.database_url.startswith("postgres"):
        raise SystemExit("the benchmark measures PostgreSQL: pass a postgres:// --database-url")
    symbols = symbols_for(args.positions)
    wall_began = time.perf_counter()
    load_before = os.getloadavg()[0]

    from tests.support.postgres import benchmark_django_setup

    server_version = benchmark_django_setup(args.database_url, production=True)
    from django.db import connection

    empty_trading_tables()
    strategy = set_up(symbols)
    print(
        f"PostgreSQL {server_version} ({connection.settings_dict['NAME']}), Python "
        f"{platform.python_version()}, {os.cpu_count()} cores; {args.orders:,} orders per phase "
        f"after {WARMUP} warm-up; {len(symbols)} symbols held, 1-share market orders "
        "alternating buy / sell"
    )
    print(
        f"AlpacaBroker rate limiter: LocalRateLimiter({UNTHROTTLED_PER_MINUTE:,}/min), i.e. "
        "not throttled (Alpaca's 200/min would take 50 min for 10,000 orders)"
    )

    phases = [run_risk_checks(strategy, symbols, args.orders)]
    if not args.risk_check_only:
        phases.append(run_alpaca(strategy, symbols, args.orders))
        phases.append(run_simulated(strategy, symbols, args.orders))

    for row in table(phases):
        print(row)
    risk = phases[0].figures()
    verdict = "PASS" if risk["p99_ms"] < RISK_CHECK_GOAL_P99_MS else "FAIL"
    print(
        f"risk check p99 {risk['p99_ms']:.2f} ms (goal < {RISK_CHECK_GOAL_P99_MS:g} ms): {verdict}"
    )
    wall = time.perf_counter() - wall_began
    load_after = os.getloadavg()[0]
    print(
        f"wall time {wall:.1f} s (set-up, all phases and checks); 1-minute load average "
        f"{load_before:.2f} before, {load_after:.2f} after (other work on the machine skews it)"
    )
    figures = {
        "orders": args.orders,
        "warmup": WARMUP,
        "symbols": len(symbols),
        "postgres": server_version,
        "cores": os.cpu_count(),
        "rate_limit_per_minute": UNTHROTTLED_PER_MINUTE,
        "phases": {phase.name: phase.figures() for phase in phases},
        "goals": {
            "risk_check_p99_ms": {
                "goal": RISK_CHECK_GOAL_P99_MS,
                "value": risk["p99_ms"],
                "verdict": verdict,
            }
        },
        "wall_s": round(wall, 1),
        "load_average_before": round(load_before, 2),
        "load_average_after": round(load_after, 2),
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

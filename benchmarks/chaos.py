"""Chaos test: paper orders, backtests and walk-forwards keep flowing while the web process,
the Celery worker and beat are killed and PostgreSQL and Redis connections are dropped;
afterwards nothing is duplicated, lost or stuck.

    .venv/bin/python benchmarks/chaos.py --minutes 3 --seed 1     # make bench-chaos
    .venv/bin/python benchmarks/chaos.py --minutes 1 --seed 7 --json var/chaos.json

Set-up
------
A fresh PostgreSQL database (``quant_chaos``, dropped and created again on each run) is
migrated and seeded (``seed_demo``: six instruments with three years of daily bars), with
a reviewed ``chaos_sma`` strategy put straight into paper mode (as the trading tests'
``paper_strategy`` does) and an ``chaos_operator`` user in the operator group. Redis database
9 is flushed. Two TCP proxies (``tests.support.tcp_proxy``) stand in front of PostgreSQL and
Redis; the platform's processes reach both only through them: the web process (daphne), one
Celery worker (prefork, concurrency 2, as docker-compose runs it) and Celery beat, with the
production settings (DEBUG off) and fast job settings (heartbeat 1 s, stale after 6 s, the
reaper every 2 s, a queued job sent again after 20 s).

Load (over HTTP, as an API client)
----------------------------------
Two threads send small market orders (1 to 5 shares of SPY, QQQ or AAPL, buy and sell so
positions move both ways) and one thread sends backtests and small walk-forwards (at most
three jobs unfinished at a time). Every request carries a fresh ``Idempotency-Key``; a
request that fails for a transport reason, a 5xx or a 429 is sent again with the *same* key
until it gets a final answer (the client protocol that prevents duplicates).

Chaos (a seeded random schedule)
--------------------------------
Every 3 to 9 s one of: ``kill -9`` of the worker, the web process or beat (restarted 0.5 to
3 s later); a drop of every PostgreSQL or Redis connection (reset at once); a block of new
PostgreSQL or Redis connections for 1 to 3 s. A process that exits on its own is restarted
too (and counted).

Afterwards
----------
The load stops, the chaos stops, every process is up again, and the platform settles (at most
``--settle`` seconds: the reaper finishes jobs, polling and reconciliation settle orders).
Then the invariants are checked against the database directly (not through the proxy):

(a) no duplicate order: each idempotency key maps to at most one order, each key whose
    request got a final answer to exactly the order that answer named; each venue order maps
    to exactly one of our orders and each order the venue acknowledged to exactly one venue
    order; no order marked "never received" is at the venue;
(b) no lost fill: per order, our fills equal the venue's (count, quantity, quantity x price),
    and the order's filled quantity equals the venue order's;
(c) positions equal the sum of their fills per (strategy, mode, symbol), and the sum over
    strategies equals the venue's position per symbol;
(d) every backtest and walk-forward run is terminal, or running with a fresh heartbeat, or
    queued for less than the resend bound; a succeeded walk-forward has every evaluation;
(e) every order is settled: terminal, or open at the venue as well.

Printed: the counts and each invariant's result; the exit status is 1 when any fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.tcp_proxy import TcpProxy  # noqa: E402

PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
DEFAULT_DATABASE = "quant_chaos"
DEFAULT_REDIS_DB = 9
SYMBOLS = ("SPY", "QQQ", "AAPL")
STRATEGY = "chaos_sma"
OPERATOR = "chaos_operator"
PASSWORD = "chaos horse battery staple"
JOB_SETTINGS = {
    "JOB_HEARTBEAT_SECONDS": "1",
    "JOB_STALE_AFTER_SECONDS": "6",
    "JOB_REAP_EVERY_SECONDS": "2",
    "JOB_QUEUED_RESEND_SECONDS": "20",
    "JOB_MAX_ATTEMPTS": "3",
}
MAX_JOBS_IN_FLIGHT = 3
REQUEST_TIMEOUT_S = (5.0, 30.0)
READY_TIMEOUT_S = 90.0
RETRY_AFTER_LOAD_S = 90.0  # a request still failing this long after the load stopped gives up
FINAL_JOB_STATUSES = ("succeeded", "failed", "cancelled")


# --- processes ------------------------------------------------------------------------------


class Service:
    """One platform process (web, worker or beat), started again as often as needed; every
    incarnation appends to the same log."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0
        self.exits: list[int] = []
        self._log_offset = 0
        self.lock = threading.Lock()

    def start(self) -> None:
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            out.write(f"\n===== start {self.starts + 1} of {self.name} =====\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output_since_start(self) -> str:
        if not self.log.exists():
            return ""
        with self.log.open("rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    def kill(self) -> None:
        """``kill -9`` of the process and its children (a prefork worker's pool)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
            self.kills += 1

    def reap_exit(self) -> int | None:
        """The exit code if the process ended on its own since the last look (then counted)."""
        if self.process is not None and self.process.poll() is not None:
            code = self.process.returncode
            self.exits.append(code)
            self.process = None
            return code
        return None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"chaos: {what} not ready after {timeout:g} s")
        time.sleep(0.25)


def web_answers(port: int) -> bool:
    import requests

    try:
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    except requests.RequestException:
        return False
    return True


# --- set-up ---------------------------------------------------------------------------------


def database_recreate(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def platform_seed() -> tuple[int, int]:
    """Demo bars and strategies, the chaos strategy in paper mode and an operator; returns
    (strategy id, operator id)."""
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command

    from quant.strategies.config import config_validate
    from research.models import Strategy, StrategyMode
    from research.services import strategy_review_builtin, strategy_version_ensure

    call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    config = config_validate(
        {
            "name": STRATEGY,
            "class": "sma_crossover",
            "symbols": list(SYMBOLS),
            "allow_short": True,
            "params": {"fast": 5, "slow": 20},
            "sizing": {"mode": "fixed", "quantity": 3},
        }
    )
    version, _ = strategy_version_ensure(config=config, source="file")
    strategy = version.strategy
    strategy_review_builtin(strategy=strategy, note="chaos test")
    Strategy.objects.filter(pk=strategy.pk).update(mode=StrategyMode.PAPER)
    user = User.objects.create_user(OPERATOR, password=PASSWORD)
    group, _ = Group.objects.get_or_create(name="operator")
    user.groups.add(group)
    return strategy.pk, user.pk


# --- the client -----------------------------------------------------------------------------


@dataclass
class Call:
    """One logical request (one idempotency key) and what became of it."""

    kind: str  # order, backtest, walk_forward
    key: str
    attempts: int = 0
    transport_errors: int = 0
    server_errors: int = 0
    throttled: int = 0
    replayed: int = 0
    status: int | None = None  # the final HTTP status; None: gave up
    code: str = ""  # error code of a final 4xx
    result_id: int | None = None
    body: dict[str, Any] = field(default_factory=dict)


class Client:
    def __init__(self, base_url: str, token: str, give_up: Callable[[], bool]) -> None:
        import requests

        self.base_url, self.give_up = base_url, give_up
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def send(self, kind: str, path: str, payload: dict[str, Any], rng: random.Random) -> Call:
        """POST with a fresh key until a final answer (the same key on every retry)."""
        import requests

        call = Call(kind=kind, key=str(uuid.uuid4()))
        while True:
            call.attempts += 1
            try:
                response = self.session.post(
                    self.base_url + path,
                    json=payload,
                    headers={"Idempotency-Key": call.key},
                    timeout=REQUEST_TIMEOUT_S,
                )
            except requests.RequestException:
                call.transport_errors += 1
                self.session.close()  # its pooled connections may be half dead
            else:
                if response.headers.get("Idempotent-Replayed") == "true":
                    call.replayed += 1
                if response.status_code == 429:
                    call.throttled += 1
                elif response.status_code >= 500:
                    call.server_errors += 1
                else:
                    call.status = response.status_code
                    try:
                        body = response.json()
                    except ValueError:
                        body = {}
                    call.body = body
                    data = body.get("data") or {}
                    error = body.get("error") or {}
                    call.code = error.get("code", "")
                    details = error.get("details") or {}
                    call.result_id = data.get("id") or details.get("order_id")
                    return call
            if self.give_up():
                return call
            time.sleep(min(0.25 * call.attempts, 3.0) * (0.5 + rng.random()))


def login(base_url: str, give_up: Callable[[], bool]) -> str:
    import requests

    while True:
        try:
            response = requests.post(
                base_url + "/v1/auth/login",
                json={"username": OPERATOR, "password": PASSWORD},
                timeout=REQUEST_TIMEOUT_S,
            )
            if response.status_code == 200:
                return str(response.json()["data"]["access_token"])
            if response.status_code < 500 and response.status_code != 429:
                raise SystemExit(f"chaos: login answered {response.status_code}: {response.text}")
        except requests.RequestException:
            pass
        if give_up():
            raise SystemExit("chaos: could not sign in")
        time.sleep(1)


class Load:
    """The load threads and everything they sent."""

    def __init__(self, base_url: str, token: str, strategy_id: int, seed: int) -> None:
        self.base_url, self.token, self.strategy_id, self.seed = base_url, token, strategy_id, seed
        self.stop = threading.Event()
        self.stopped_at: float | None = None
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        self.net: Counter[str] = Counter()
        self.threads: list[threading.Thread] = []
        self.crashes: list[str] = []

    def give_up(self) -> bool:
        return (
            self.stopped_at is not None and time.monotonic() > self.stopped_at + RETRY_AFTER_LOAD_S
        )

    def record(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)

    def start(self, order_threads: int = 2) -> None:
        for n in range(order_threads):
            self.threads.append(threading.Thread(target=self._guard, args=(self.orders, n)))
        self.threads.append(threading.Thread(target=self._guard, args=(self.jobs, 0)))
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stopped_at = time.monotonic()
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def _guard(self, body: Callable[[int], None], n: int) -> None:
        from django.db import connections

        try:
            body(n)
        except BaseException as error:
            self.crashes.append(f"{body.__name__}[{n}]: {type(error).__name__}: {error}")
            raise
        finally:
            connections.close_all()

    def orders(self, n: int) -> None:
        rng = random.Random(self.seed * 1000 + n)
        client = Client(self.base_url, self.token, self.give_up)
        while not self.stop.is_set():
            symbol = rng.choice(SYMBOLS)
            with self.lock:
                held = self.net[symbol]
            if held > 12:
                side = "sell"
            elif held < -12:
                side = "buy"
            else:
                side = rng.choice(("buy", "sell"))
            payload = {
                "strategy_id": self.strategy_id,
                "symbol": symbol,
                "side": side,
                "quantity": str(rng.randint(1, 5)),
                "mode": "paper",
                "reason": "chaos",
            }
            call = client.send("order", "/v1/orders", payload, rng)
            self.record(call)
            if call.status == 201:
                filled = Decimal(str(call.body.get("data", {}).get("filled_quantity") or "0"))
                with self.lock:
                    self.net[symbol] += int(filled if side == "buy" else -filled)
            time.sleep(rng.uniform(0.1, 0.5))

    def jobs(self, n: int) -> None:
        from backtests.models import BacktestRun, WalkForwardRun

        rng = random.Random(self.seed * 1000 + 500 + n)
        client = Client(self.base_url, self.token, self.give_up)
        sent = 0
        while not self.stop.is_set():
            unfinished = (
                BacktestRun.objects.exclude(status__in=FINAL_JOB_STATUSES).count()
                + WalkForwardRun.objects.exclude(status__in=FINAL_JOB_STATUSES).count()
            )
            if unfinished >= MAX_JOBS_IN_FLIGHT:
                self.stop.wait(1.0)
                continue
            sent += 1
            year = rng.choice((1, 2))
            if sent % 4 == 0:
                payload: dict[str, Any] = {
                    "strategy_id": self.strategy_id,
                    "symbols": [rng.choice(SYMBOLS)],
                    "in_sample_days": 250,
                    "out_of_sample_days": 120,
                    "step_days": 120,
                    "parameter_grid": {"fast": [5, 10], "slow": [20, 40]},
                }
                self.record(client.send("walk_forward", "/v1/walk-forward", payload, rng))
            else:
                payload = {
                    "strategy_id": self.strategy_id,
                    "symbols": rng.sample(SYMBOLS, year),
                    "engine_mode": rng.choice(("event", "vectorized")),
                }
                self.record(client.send("backtest", "/v1/runs", payload, rng))
            self.stop.wait(rng.uniform(0.5, 2.0))


# --- chaos ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    at: float  # seconds after the chaos started
    action: str
    value: float  # restart delay, or block duration


ACTIONS = {
    "kill worker": 3.0,
    "kill web": 2.0,
    "kill beat": 1.5,
    "drop postgres": 3.0,
    "drop redis": 2.0,
    "block postgres": 1.0,
    "block redis": 1.0,
}


def chaos_schedule(seed: int, seconds: float) -> list[Event]:
    rng = random.Random(seed)
    names, weights = list(ACTIONS), list(ACTIONS.values())
    events, at = [], rng.uniform(3, 6)
    while at < seconds - 3:
        action = rng.choices(names, weights)[0]
        value = rng.uniform(1, 3) if action.startswith("block") else rng.uniform(0.5, 3)
        events.append(Event(round(at, 2), action, round(value, 2)))
        at += rng.uniform(3, 9)
    return events


class Chaos:
    def __init__(
        self, services: dict[str, Service], proxies: dict[str, TcpProxy], events: list[Event]
    ) -> None:
        self.services, self.proxies, self.events = services, proxies, events
        self.stop = threading.Event()
        self.done: list[str] = []
        self.thread = threading.Thread(target=self.run, name="chaos")
        self.restart_timers: list[threading.Timer] = []

    def start(self) -> None:
        self.thread.start()

    def finish(self) -> None:
        self.stop.set()
        self.thread.join()
        for timer in self.restart_timers:
            timer.join()

    def run(self) -> None:
        began = time.monotonic()
        pending = list(self.events)
        while not self.stop.is_set():
            self.watchdog()
            if pending and time.monotonic() - began >= pending[0].at:
                self.apply(pending.pop(0))
            self.stop.wait(0.2)

    def watchdog(self) -> None:
        """Restart a process that ended on its own (not one we killed and will restart)."""
        for service in self.services.values():
            with service.lock:
                code = service.reap_exit()
                if code is not None:
                    self.done.append(f"{service.name} exited on its own ({code}): restarted")
                    service.start()

    def apply(self, event: Event) -> None:
        verb, target = event.action.split()
        if verb == "kill":
            service = self.services[target]
            with service.lock:
                service.kill()
                service.process = None
            self.done.append(f"{event.at:6.1f}s kill -9 {target}, restart in {event.value:g}s")

            def restart() -> None:
                with service.lock:
                    if service.process is None:
                        service.start()

            timer = threading.Timer(event.value, restart)
            timer.start()
            self.restart_timers.append(timer)
        elif verb == "drop":
            dropped = self.proxies[target].drop()
            self.done.append(f"{event.at:6.1f}s drop {target}: {dropped} connection(s) reset")
        else:
            self.proxies[target].block(event.value)
            self.done.append(f"{event.at:6.1f}s block {target} for {event.value:g}s")


# --- invariants -----------------------------------------------------------------------------


@dataclass
class Verdict:
    name: str
    problems: list[str] = field(default_factory=list)
    checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def check_orders(calls: list[Call], user_id: int) -> list[Verdict]:
    from trading.models import Fill, Order, Position
    from trading.venue.models import VenueFill, VenueOrder, VenuePosition

    orders = list(Order.objects.all())
    by_key: dict[str, list[Order]] = defaultdict(list)
    for order in orders:
        if order.idempotency_key:
            by_key[order.idempotency_key].append(order)
    venue_orders = list(VenueOrder.objects.all())
    venue_by_client: dict[str, list[VenueOrder]] = defaultdict(list)
    for venue_order in venue_orders:
        venue_by_client[venue_order.client_order_id].append(venue_order)
    ours_by_client: dict[str, list[Order]] = defaultdict(list)
    for order in orders:
        ours_by_client[order.client_order_id].append(order)

    # (a) no duplicate order
    a = Verdict("a. no duplicate order")
    for call in (c for c in calls if c.kind == "order"):
        a.checked += 1
        stored = by_key.get(f"{user_id}:{call.key}", [])
        if len(stored) > 1:
            a.problems.append(f"key {call.key}: {len(stored)} orders {[o.pk for o in stored]}")
        if call.status in (201, 422) and call.code in ("", "risk_rejected"):
            if len(stored) != 1:
                a.problems.append(
                    f"key {call.key} answered {call.status} but has {len(stored)} orders"
                )
            elif call.result_id != stored[0].pk:
                a.problems.append(
                    f"key {call.key}: answered order {call.result_id}, stored {stored[0].pk}"
                )
    for client_order_id, venue_rows in venue_by_client.items():
        a.checked += 1
        ours = ours_by_client.get(client_order_id, [])
        if len(venue_rows) != 1 or len(ours) != 1:
            a.problems.append(
                f"venue order {client_order_id}: {len(venue_rows)} at the venue, {len(ours)} ours"
            )
    for order in orders:
        venue_rows = venue_by_client.get(order.client_order_id, [])
        acknowledged = order.broker_order_id or order.status in (
            "submitted",
            "partially_filled",
            "filled",
        )
        if acknowledged and len(venue_rows) != 1:
            a.problems.append(
                f"order {order.pk} ({order.status}) has {len(venue_rows)} venue orders"
            )
        if (
            venue_rows
            and order.broker_order_id
            and order.broker_order_id != venue_rows[0].broker_order_id
        ):
            a.problems.append(f"order {order.pk}: broker id differs from the venue's")
        if order.status == "rejected" and "never received" in order.reject_reason and venue_rows:
            a.problems.append(f"order {order.pk} marked never received but the venue has it")

    # (b) no lost fill
    b = Verdict("b. no lost fill")
    ours_fills: dict[int, list[Any]] = defaultdict(list)
    for fill in Fill.objects.all():
        ours_fills[fill.order_id].append(fill)
    venue_fills: dict[int, list[Any]] = defaultdict(list)
    for venue_fill in VenueFill.objects.all():
        venue_fills[venue_fill.order_id].append(venue_fill)
    venue_by_id = {v.pk: v for v in venue_orders}
    for order in orders:
        b.checked += 1
        rows = venue_by_client.get(order.client_order_id, [])
        theirs = venue_fills.get(rows[0].pk, []) if len(rows) == 1 else []
        mine = ours_fills.get(order.pk, [])
        mine_sum = (
            len(mine),
            sum((f.quantity for f in mine), Decimal(0)),
            sum((f.quantity * f.price for f in mine), Decimal(0)),
        )
        their_sum = (
            len(theirs),
            sum((f.quantity for f in theirs), Decimal(0)),
            sum((f.quantity * f.price for f in theirs), Decimal(0)),
        )
        if mine_sum != their_sum:
            b.problems.append(
                f"order {order.pk} {order.client_order_id} ({order.status}): ours (count, qty, "
                f"value) {tuple(str(x) for x in mine_sum)} vs venue {tuple(str(x) for x in their_sum)}"
            )
        if len(rows) == 1 and order.filled_quantity != rows[0].filled_qty:
            b.problems.append(
                f"order {order.pk}: filled {order.filled_quantity} vs venue {rows[0].filled_qty}"
            )
    orphan = [pk for pk in venue_fills if venue_by_id[pk].client_order_id not in ours_by_client]
    if orphan:
        b.problems.append(f"venue fills of orders we do not have: venue orders {orphan[:5]}")

    # (c) positions equal the sum of fills, and the venue's
    c = Verdict("c. positions = sum of fills = venue")
    sums: dict[tuple[int, str, str], Decimal] = defaultdict(Decimal)
    for fills in ours_fills.values():
        for fill in fills:
            signed = fill.quantity if fill.side == "buy" else -fill.quantity
            sums[(fill.strategy_id, fill.mode, fill.symbol)] += signed
    positions = {(p.strategy_id, p.mode, p.symbol): p.quantity for p in Position.objects.all()}
    for key in sorted(set(sums) | set(positions)):
        c.checked += 1
        if sums.get(key, Decimal(0)) != positions.get(key, Decimal(0)):
            c.problems.append(f"position {key}: {positions.get(key)} vs fills {sums.get(key)}")
    ours_by_symbol: dict[str, Decimal] = defaultdict(Decimal)
    for (_, mode, symbol), quantity in positions.items():
        if mode == "paper":
            ours_by_symbol[symbol] += quantity
    venue_positions = {p.symbol: p.quantity for p in VenuePosition.objects.all()}
    for symbol in sorted(set(ours_by_symbol) | set(venue_positions)):
        c.checked += 1
        if ours_by_symbol.get(symbol, Decimal(0)) != venue_positions.get(symbol, Decimal(0)):
            c.problems.append(
                f"{symbol}: ours {ours_by_symbol.get(symbol)} vs venue {venue_positions.get(symbol)}"
            )

    # (e) every order settled
    e = Verdict("e. every order settled")
    for order in orders:
        e.checked += 1
        if order.status in ("pending", "submitted", "partially_filled"):
            rows = venue_by_client.get(order.client_order_id, [])
            if not (order.status != "pending" and rows and rows[0].is_open):
                e.problems.append(
                    f"order {order.pk} {order.client_order_id} left {order.status} "
                    f"(submit started: {order.submit_started_at is not None}, venue: "
                    f"{rows[0].status if rows else 'none'})"
                )
    return [a, b, c, e]


def check_jobs(calls: list[Call], user_id: int) -> Verdict:
    from django.utils import timezone

    from backtests.models import BacktestRun, WalkForwardRun

    now = timezone.now()
    stale = now - timedelta(seconds=int(JOB_SETTINGS["JOB_STALE_AFTER_SECONDS"]))
    resend = now - timedelta(seconds=int(JOB_SETTINGS["JOB_QUEUED_RESEND_SECONDS"]))
    d = Verdict("d. jobs terminal or alive")
    for model in (BacktestRun, WalkForwardRun):
        by_key: dict[str, list[Any]] = defaultdict(list)
        for run in model.objects.all():
            d.checked += 1
            if run.idempotency_key:
                by_key[run.idempotency_key].append(run)
            if run.status == "running" and run.heartbeat_at < stale:
                d.problems.append(
                    f"{model.__name__} {run.pk} running, heartbeat {run.heartbeat_at}"
                )
            if run.status == "queued" and run.heartbeat_at < resend:
                d.problems.append(f"{model.__name__} {run.pk} queued since {run.heartbeat_at}")
        kind = "backtest" if model is BacktestRun else "walk_forward"
        for call in (c for c in calls if c.kind == kind):
            stored = by_key.get(f"{user_id}:{call.key}", [])
            if len(stored) > 1 or (call.status == 202 and len(stored) != 1):
                d.problems.append(f"{kind} key {call.key}: {len(stored)} runs")
            elif call.status == 202 and stored[0].pk != call.result_id:
                d.problems.append(
                    f"{kind} key {call.key}: answered {call.result_id}, stored {stored[0].pk}"
                )
    for run in WalkForwardRun.objects.filter(status="succeeded"):
        problem = _walk_forward_incomplete(run)
        if problem:
            d.problems.append(f"walk-forward {run.pk} succeeded but {problem}")
    for run in BacktestRun.objects.filter(status="succeeded", final_equity__isnull=True):
        d.problems.append(f"backtest {run.pk} succeeded without a result")
    return d


def _walk_forward_incomplete(run: Any) -> str:
    """What a succeeded walk-forward lacks ("" when nothing): every task counted, every
    window with one in-sample result per grid point and, unless flagged (no grid point
    qualified: no out-of-sample task), its out-of-sample result. The evaluation rows are
    deleted once gathered; their results live on in the window rows."""
    windows = list(run.windows.all())
    if not windows or run.tasks_done != run.tasks_total or run.tasks_total % len(windows):
        return f"{run.tasks_done}/{run.tasks_total} tasks over {len(windows)} windows"
    points = run.tasks_total // len(windows) - 1
    for window in windows:
        if len(window.grid_results or []) != points:
            return f"window {window.index} has {len(window.grid_results or [])}/{points} points"
        if not window.flag and window.out_of_sample_metrics is None:
            return f"window {window.index} has no out-of-sample result"
    return ""


# --- the report -----------------------------------------------------------------------------


def counts(
    calls: list[Call], services: dict[str, Service], proxies: dict[str, TcpProxy]
) -> dict[str, Any]:
    from backtests.models import BacktestRun, WalkForwardRun
    from trading.models import Fill, Order
    from trading.venue.models import VenueFill, VenueOrder

    kinds = Counter(c.kind for c in calls)
    out: dict[str, Any] = {
        "requests": {
            kind: {
                "keys": kinds[kind],
                "attempts": sum(c.attempts for c in calls if c.kind == kind),
                "retried": sum(1 for c in calls if c.kind == kind and c.attempts > 1),
                "replayed": sum(c.replayed for c in calls if c.kind == kind),
                "transport_errors": sum(c.transport_errors for c in calls if c.kind == kind),
                "5xx": sum(c.server_errors for c in calls if c.kind == kind),
                "429": sum(c.throttled for c in calls if c.kind == kind),
                "answers": dict(
                    Counter(
                        f"{c.status or 'gave up'}{' ' + c.code if c.code else ''}"
                        for c in calls
                        if c.kind == kind
                    )
                ),
            }
            for kind in ("order", "backtest", "walk_forward")
        },
        "orders": dict(Counter(Order.objects.values_list("status", flat=True))),
        "orders_by_source": dict(Counter(Order.objects.values_list("source", flat=True))),
        "rejections": dict(
            Counter(
                r[:90]
                for r in Order.objects.filter(status="rejected").values_list(
                    "reject_reason", flat=True
                )
            )
        ),
        "venue_orders": VenueOrder.objects.count(),
        "fills": Fill.objects.count(),
        "venue_fills": VenueFill.objects.count(),
        "backtests": dict(Counter(BacktestRun.objects.values_list("status", flat=True))),
        "walk_forwards": dict(Counter(WalkForwardRun.objects.values_list("status", flat=True))),
        "job_failures": dict(
            Counter(
                (m[:90] if m else "")
                for model in (BacktestRun, WalkForwardRun)
                for m in model.objects.filter(status="failed").values_list(
                    "error_message", flat=True
                )
            )
        ),
        "kills": {name: s.kills for name, s in services.items()},
        "exits_on_their_own": {name: len(s.exits) for name, s in services.items()},
        "starts": {name: s.starts for name, s in services.items()},
        "proxies": {
            name: {
                "drops": p.stats.drops,
                "connections_reset": p.stats.dropped,
                "blocks": p.stats.blocks,
                "refused": p.stats.refused,
                "connections": p.stats.forwarded,
            }
            for name, p in proxies.items()
        },
    }
    return out


# --- main -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=3.0, help="minutes of chaos")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--settle", type=float, default=120.0, help="seconds to settle at most")
    parser.add_argument("--database", default=DEFAULT_DATABASE, help="created afresh; quant_chaos*")
    parser.add_argument("--redis-db", type=int, default=DEFAULT_REDIS_DB)
    parser.add_argument("--json", type=Path, help="also write the counts and verdicts here")
    args = parser.parse_args()
    if not args.database.startswith("quant_chaos"):
        raise SystemExit("--database must start with quant_chaos (it is dropped and created)")
    began = time.monotonic()
    run_dir = ROOT / "var" / "chaos" / f"{time.strftime('%Y%m%d-%H%M%S')}-seed{args.seed}"
    run_dir.mkdir(parents=True, exist_ok=True)

    import redis

    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=args.redis_db).flushdb()
    database_recreate(args.database)
    direct_url = f"postgres://postgres@{PG_HOST}:{PG_PORT}/{args.database}"
    secret_key = secrets.token_urlsafe(50)
    for name in ("REDIS_URL", "CELERY_BROKER_URL", *JOB_SETTINGS):
        os.environ.pop(name, None)
    os.environ.update(
        DATABASE_URL=direct_url,
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="false",
        SECRET_KEY=secret_key,
        VAR_DIR=str(run_dir / "var"),
        LOG_LEVEL="WARNING",
        **JOB_SETTINGS,
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    strategy_id, user_id = platform_seed()
    print(
        f"chaos: database {args.database} migrated and seeded in {time.monotonic() - began:.0f} s; logs in {run_dir}"
    )

    pg_proxy = TcpProxy(PG_HOST, PG_PORT).start()
    redis_proxy = TcpProxy(REDIS_HOST, REDIS_PORT).start()
    proxies = {"postgres": pg_proxy, "redis": redis_proxy}
    redis_url = f"redis://127.0.0.1:{redis_proxy.port}/{args.redis_db}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CELERY_", "REDIS_URL", "DATABASE_URL", "JOB_", "TEST_", "PYTEST"))
    }
    env.update(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{pg_proxy.port}/{args.database}",
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        DEBUG="false",
        SECRET_KEY=secret_key,
        VAR_DIR=str(run_dir / "var"),
        LOG_FORMAT="console",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        API_RATE_LIMIT_USER_PER_MINUTE="100000",
        API_RATE_LIMIT_IP_PER_MINUTE="100000",
        PAPER_STARTING_CASH="10000000",
        **JOB_SETTINGS,
    )
    port = free_port()
    python = sys.executable
    celery = [python, "-m", "celery", "-A", "config"]
    services = {
        "web": Service(
            "web",
            [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
            env,
            run_dir / "web.log",
        ),
        "worker": Service(
            "worker",
            [*celery, "worker", "--loglevel=INFO", "--concurrency=2", "-n", "chaos@%h"],
            env,
            run_dir / "worker.log",
        ),
        "beat": Service(
            "beat",
            [
                *celery,
                "beat",
                "--loglevel=INFO",
                "--scheduler",
                "django_celery_beat.schedulers:DatabaseScheduler",
                "--pidfile=",
            ],
            env,
            run_dir / "beat.log",
        ),
    }
    load: Load | None = None
    chaos: Chaos | None = None
    verdicts: list[Verdict] = []
    report: dict[str, Any] = {}
    try:
        for service in services.values():
            service.start()
        wait_until(lambda: web_answers(port), READY_TIMEOUT_S, "web")
        wait_until(
            lambda: "ready." in services["worker"].output_since_start(), READY_TIMEOUT_S, "worker"
        )
        base_url = f"http://127.0.0.1:{port}"
        token = login(base_url, lambda: False)
        print(f"chaos: web on {base_url}, worker and beat up in {time.monotonic() - began:.0f} s")

        events = chaos_schedule(args.seed, args.minutes * 60)
        load = Load(base_url, token, strategy_id, args.seed)
        chaos = Chaos(services, proxies, events)
        chaos_began = time.monotonic()
        load.start()
        chaos.start()
        time.sleep(args.minutes * 60)
        chaos.finish()
        load.finish()
        chaos_seconds = time.monotonic() - chaos_began
        pg_proxy.unblock()
        redis_proxy.unblock()
        print(
            f"chaos: {len(chaos.done)} chaos events in {chaos_seconds:.0f} s; load stopped; settling"
        )
        for line in chaos.done:
            print("   ", line)

        settle_began = time.monotonic()
        settled = False
        while time.monotonic() - settle_began < args.settle:
            chaos.watchdog()
            if _settled():
                settled = True
                break
            time.sleep(2)
        settle_seconds = time.monotonic() - settle_began
        calls = list(load.calls)
        verdicts = check_orders(calls, user_id)
        verdicts.insert(3, check_jobs(calls, user_id))
        if load.crashes:
            verdicts.append(Verdict("load threads ran to the end", problems=load.crashes))
        unexpected = [
            f"{c.kind} {c.key}: {c.status} {c.code}"
            for c in calls
            if c.status is None or not (c.status in (201, 202) or c.code == "risk_rejected")
        ]
        verdicts.append(
            Verdict("every request got a final answer", problems=unexpected, checked=len(calls))
        )
        report = counts(calls, services, proxies)
        report.update(
            seed=args.seed,
            chaos_seconds=round(chaos_seconds),
            settle_seconds=round(settle_seconds),
            settled=settled,
            total_seconds=round(time.monotonic() - began),
            events=len(chaos.done),
        )
    finally:
        if chaos is not None and chaos.thread.is_alive():
            chaos.finish()
        if load is not None and any(t.is_alive() for t in load.threads):
            load.stopped_at = time.monotonic() - RETRY_AFTER_LOAD_S
            load.finish()
        for service in services.values():
            service.stop()
        pg_proxy.close()
        redis_proxy.close()

    print(json.dumps({k: v for k, v in report.items() if k != "requests"}, indent=1, default=str))
    print("requests:", json.dumps(report.get("requests", {}), indent=1))
    failed = False
    for verdict in verdicts:
        mark = "PASS" if verdict.ok else "FAIL"
        print(f"{mark}  {verdict.name} ({verdict.checked} checked)")
        for problem in verdict.problems[:10]:
            print("      ", problem)
        if len(verdict.problems) > 10:
            print(f"       ... and {len(verdict.problems) - 10} more")
        failed |= not verdict.ok
    report["invariants"] = {v.name: {"ok": v.ok, "problems": v.problems[:20]} for v in verdicts}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=str))
    print(
        f"chaos: {'FAILED' if failed else 'passed'} in {time.monotonic() - began:.0f} s (logs: {run_dir})"
    )
    return 1 if failed or not verdicts else 0


def _settled() -> bool:
    from backtests.models import BacktestRun, WalkForwardRun
    from quant.orders.fsm import OPEN_STATUSES
    from trading.models import Order

    return not (
        BacktestRun.objects.exclude(status__in=FINAL_JOB_STATUSES).exists()
        or WalkForwardRun.objects.exclude(status__in=FINAL_JOB_STATUSES).exists()
        or Order.objects.filter(status__in=[s.value for s in OPEN_STATUSES]).exists()
    )


if __name__ == "__main__":
    sys.exit(main())

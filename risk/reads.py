"""The risk gateway's reads: hand-written statements, prepared once per connection.

The gateway runs inside every order's approving transaction and reads everything it checks
from the database on every check (limits are never cached). Composed by the ORM, its dozen
reads took ~10 ms, most of it Python composing SQL and PostgreSQL parsing and planning it;
here they are four statements written once (``Columns`` ties them to the model fields and
reads values back as the ORM would) and prepared once per PostgreSQL connection
(``common.db.prepared``). Each works on SQLite as written.

- ``GatewayReads``: one row — the kill switch (global and the strategy's), safe mode, the
  strategy's runtime and current version, the account (latest snapshot, the session's first,
  the peak) and the limits in force.
- ``book_read``: the positions of the mode, the order symbol's last ``ADV_SESSIONS`` daily
  bars and the last price of that symbol and of every symbol held, as one UNION ALL.
- ``daily_bars``, ``positions_of``, ``account_read``: the same reads one by one, for the
  trading loop and reconciliation (``marketdata.prices.last_prices`` reads last prices).

``gateway_reads`` sends the kill-switch lock (shared, ``risk.selectors``) first, then
``GatewayReads`` and the book, in one query string: the reads' snapshots are taken after the
lock is granted, so an activation that is committing is waited for and then seen.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from typing import Any

from django.db import connection

from common.db import prepared
from common.db.columns import Columns
from marketdata.domain import Timeframe
from marketdata.models import Bar, Instrument
from marketdata.prices import LAST_BAR, NewestClose, last_bars_select
from quant.risk.limits import PLATFORM_FIELDS, STRATEGY_FIELDS, RiskLimits, StrategyLimits
from quant.risk.values import KillSwitchView
from quant.strategies.config import RiskOverrides
from research.models import Strategy, StrategyVersion
from risk.locks import kill_switch_lock_statement
from risk.models import GLOBAL, KillSwitchState, RiskLimitSet, StrategyRiskLimit
from trading.models import AccountSnapshot, Position, SafeMode, StrategyRuntime

ADV_SESSIONS = 20
DAILY_BAR = Columns(Bar, "close", "volume")
POSITION = Columns(
    Position, "id", "strategy", "mode", "symbol", "quantity", "avg_price", "realized_pnl"
)
Statement = tuple[str, list[Any]]
Daily = list[tuple[Decimal, Decimal]]
"""(volume, close) of daily bars, newest first."""


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


# --- daily bars and positions -----------------------------------------------------------------


@functools.cache
def _daily_bars_sql(vendor: str) -> str:
    instrument = _q(Instrument._meta.db_table)
    return (
        f"SELECT {DAILY_BAR.select('b')} FROM {DAILY_BAR.table} b JOIN {instrument} i "
        f"ON i.{_q('id')} = {DAILY_BAR.column('instrument', 'b')} WHERE i.{_q('symbol')} = %s "
        f"AND {DAILY_BAR.column('timeframe', 'b')} = %s AND {DAILY_BAR.column('ts', 'b')} <= %s "
        f"ORDER BY {DAILY_BAR.column('ts', 'b')} DESC LIMIT {ADV_SESSIONS}"
    )


def _daily_params(symbol: str, now: datetime) -> list[Any]:
    return [symbol, Timeframe.DAY_1.value, DAILY_BAR.param("ts", now)]


def _daily_row(row: Sequence[Any]) -> tuple[Decimal, Decimal]:
    close, volume = DAILY_BAR.values(row)
    return volume, close


def daily_bars(symbol: str, now: datetime) -> Daily:
    """The symbol's last ``ADV_SESSIONS`` daily bars up to ``now``."""
    with connection.cursor() as cursor:
        prepared.execute(cursor, _daily_bars_sql(connection.vendor), _daily_params(symbol, now))
        return [_daily_row(row) for row in cursor.fetchall()]


@functools.cache
def _positions_sql(vendor: str) -> str:
    return f"SELECT {POSITION.select()} FROM {POSITION.table} WHERE {POSITION.column('mode')} = %s"


def positions_of(mode: str) -> list[Position]:
    """Every position of ``mode`` (the fields the views read; the others deferred)."""
    with connection.cursor() as cursor:
        prepared.execute(cursor, _positions_sql(connection.vendor), [mode])
        return [POSITION.instance(row) for row in cursor.fetchall()]


# --- the book: positions, daily bars and last prices in one statement ------------------------


@dataclass(frozen=True)
class Book:
    positions: list[Position]
    daily: Daily
    prices: dict[str, Decimal]


@functools.cache
def _book_sql(vendor: str) -> str:
    """Three reads as one UNION ALL, each row tagged by its kind in typed slots (a slot a kind
    does not use holds a NULL cast to the slot's type, as PostgreSQL's UNION needs):

    kind, id, strategy_id, mode, symbol, timeframe, n1, n2, n3, ts

    - ``p``: a position — id, strategy_id, mode, symbol; n1..n3 quantity, avg_price, realized_pnl
    - ``d``: a daily bar of the order's symbol — n1 close, n2 volume
    - ``l``: the newest bar of a timeframe — symbol, timeframe, n1 close, ts
    """
    p = {name: POSITION.column(name) for name in POSITION.names}
    numeric, text = "CAST(NULL AS NUMERIC)", "CAST(NULL AS VARCHAR(32))"
    bigint = "CAST(NULL AS BIGINT)"
    ts = f"CAST(NULL AS {LAST_BAR.fields[0].cast_db_type(connection)})"
    held = (
        f"SELECT {p['symbol']} FROM {POSITION.table} "
        f"WHERE {p['mode']} = %s AND {p['quantity']} <> 0"
    )
    last = last_bars_select(f"(i.{_q('symbol')} = %s OR i.{_q('symbol')} IN ({held}))")
    return (
        f"SELECT 'p', {p['id']}, {p['strategy']}, {p['mode']}, {p['symbol']}, {text}, "
        f"{p['quantity']}, {p['avg_price']}, {p['realized_pnl']}, {ts} "
        f"FROM {POSITION.table} WHERE {p['mode']} = %s "
        f"UNION ALL SELECT 'd', {bigint}, {bigint}, {text}, {text}, {text}, "
        f"d.{DAILY_BAR.column('close')}, d.{DAILY_BAR.column('volume')}, {numeric}, {ts} "
        f"FROM ({_daily_bars_sql(vendor)}) d "
        f"UNION ALL SELECT 'l', {bigint}, {bigint}, {text}, l.{_q('symbol')}, l.tf, "
        f"l.{_q('close')}, {numeric}, {numeric}, l.{_q('ts')} FROM ({last}) l"
    )


def book_statement(mode: str, symbol: str, now: datetime) -> Statement:
    return _book_sql(connection.vendor), [mode, *_daily_params(symbol, now), symbol, mode]


def book_from_rows(rows: Sequence[Sequence[Any]]) -> Book:
    positions: list[Position] = []
    daily: Daily = []
    newest = NewestClose()
    for kind, pk, strategy_id, row_mode, row_symbol, timeframe, n1, n2, n3, ts in rows:
        if kind == "p":
            positions.append(POSITION.instance((pk, strategy_id, row_mode, row_symbol, n1, n2, n3)))
        elif kind == "d":
            daily.append(_daily_row((n1, n2)))
        else:
            newest.add(row_symbol, timeframe, ts, n1)
    return Book(positions=positions, daily=daily, prices=newest.prices())


def book_read(mode: str, symbol: str, now: datetime) -> Book:
    """Every position of ``mode``, ``symbol``'s daily bars up to ``now`` and the last price of
    ``symbol`` and of every symbol held in ``mode``."""
    (rows,) = prepared.fetch_together([book_statement(mode, symbol, now)])
    return book_from_rows(rows)


def gateway_reads(
    strategy_id: int, mode: str, symbol: str, now: datetime
) -> tuple[GatewayReads, Book]:
    """The kill-switch lock (shared), then ``GatewayReads`` and the book of an order, sent
    together (one round trip on PostgreSQL); inside the transaction that approves the order."""
    if not connection.in_atomic_block:
        raise RuntimeError("gateway_reads must run inside transaction.atomic()")
    statements = [
        GatewayReads.statement(strategy_id, mode, now),
        book_statement(mode, symbol, now),
    ]
    if connection.vendor == "postgresql":
        statements.insert(0, kill_switch_lock_statement())
    *_, reads, book = prepared.fetch_together(statements)
    return GatewayReads(reads), book_from_rows(book)


# --- one row: kill switch, safe mode, runtime, version, account, limits ----------------------


class GatewayReads:
    """What the gateway reads besides positions and bars, in one statement.

    One row: the global kill switch and the strategy's, the safe mode's reason (when on), the
    strategy's runtime, its current version, the account (latest snapshot, the session's
    first, the peak equity) and the limits in force. Each part is a derived table LEFT JOINed
    to a one-row base, so a missing part reads as NULLs; the columns come from the models and
    the values pass through ``Columns``.
    """

    KILL_GLOBAL = Columns(KillSwitchState, "id", "active", "reason")
    KILL_STRATEGY = Columns(KillSwitchState, "active", "reason")
    SAFE_MODE = Columns(SafeMode, "reason")
    RUNTIME = Columns(
        StrategyRuntime,
        "id",
        "paused_at",
        "paused_until",
        "paused_check",
        "paused_reason",
        "high_water_mark",
        "session_date",
        "session_start_equity",
    )
    STRATEGY = Columns(Strategy, "name", "mode")
    VERSION = Columns(StrategyVersion, "id", "content_hash")
    LATEST = Columns(AccountSnapshot, "equity", "cash")
    OPENING = Columns(AccountSnapshot, "equity")
    LIMITS = Columns(RiskLimitSet, *PLATFORM_FIELDS)
    STRATEGY_LIMITS = Columns(StrategyRiskLimit, *STRATEGY_FIELDS)
    PARTS: tuple[Columns[Any], ...] = (
        KILL_GLOBAL,
        KILL_STRATEGY,
        SAFE_MODE,
        RUNTIME,
        STRATEGY,
        VERSION,
        LATEST,
        OPENING,
        OPENING,
        LIMITS,
        STRATEGY_LIMITS,
    )

    @staticmethod
    @functools.cache
    def sql(vendor: str) -> str:
        r, q = GatewayReads, connection.ops.quote_name
        strategy = q(Strategy._meta.db_table)
        current = q(Strategy._meta.get_field("current_version").column)
        account = r.LATEST.table
        parts = [
            f"SELECT {r.KILL_GLOBAL.select()} FROM {r.KILL_GLOBAL.table} "
            f"WHERE {r.KILL_GLOBAL.column('scope')} = %s",
            f"SELECT {r.KILL_STRATEGY.select()} FROM {r.KILL_STRATEGY.table} "
            f"WHERE {r.KILL_STRATEGY.column('strategy')} = %s",
            f"SELECT {r.SAFE_MODE.select()}, 1 AS present FROM {r.SAFE_MODE.table} "
            f"WHERE {r.SAFE_MODE.column('mode')} = %s AND {r.SAFE_MODE.column('active')} = %s",
            f"SELECT {r.RUNTIME.select()} FROM {r.RUNTIME.table} WHERE "
            f"{r.RUNTIME.column('strategy')} = %s AND {r.RUNTIME.column('mode')} = %s",
            f"SELECT {r.STRATEGY.select()} FROM {strategy} WHERE {q('id')} = %s",
            f"SELECT {r.VERSION.select('v')} FROM {strategy} s JOIN {r.VERSION.table} v "
            f"ON v.{q('id')} = s.{current} WHERE s.{q('id')} = %s",
            f"SELECT {r.LATEST.select()} FROM {account} WHERE {r.LATEST.column('mode')} = %s "
            f"ORDER BY {r.LATEST.column('ts')} DESC, {q('id')} DESC LIMIT 1",
            f"SELECT {r.OPENING.select()} FROM {account} WHERE {r.OPENING.column('mode')} = %s "
            f"AND {r.OPENING.column('ts')} >= %s ORDER BY {r.OPENING.column('ts')}, {q('id')} "
            "LIMIT 1",
            f"SELECT MAX({r.OPENING.column('equity')}) AS {q('equity')} FROM {account} "
            f"WHERE {r.OPENING.column('mode')} = %s",
            f"SELECT {r.LIMITS.select()} FROM {r.LIMITS.table} "
            f"WHERE {r.LIMITS.column('is_active')} = %s ORDER BY {q('id')} DESC LIMIT 1",
            f"SELECT {r.STRATEGY_LIMITS.select()} FROM {r.STRATEGY_LIMITS.table} "
            f"WHERE {r.STRATEGY_LIMITS.column('strategy')} = %s",
        ]
        picks, joins = [], []
        for n, (columns, part) in enumerate(zip(r.PARTS, parts, strict=True)):
            picks += [f"p{n}.{columns.column(name)}" for name in columns.names]
            joins.append(f"LEFT JOIN ({part}) p{n} ON 1 = 1")
        picks.append(f"p{r.PARTS.index(r.SAFE_MODE)}.present")
        return f"SELECT {', '.join(picks)} FROM (SELECT 1 AS one) base {' '.join(joins)}"

    @classmethod
    def statement(cls, strategy_id: int | None, mode: str, now: datetime) -> Statement:
        session_start = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
        params = [
            GLOBAL,
            strategy_id,
            *(mode, cls.SAFE_MODE.param("active", True)),
            *(strategy_id, mode),
            strategy_id,
            strategy_id,
            mode,
            *(mode, cls.OPENING.param("ts", session_start)),
            mode,
            cls.LIMITS.param("is_active", True),
            strategy_id,
        ]
        return cls.sql(connection.vendor), params

    @classmethod
    def read(cls, strategy_id: int | None, mode: str, now: datetime) -> GatewayReads:
        (rows,) = prepared.fetch_together([cls.statement(strategy_id, mode, now)])
        return cls(rows)

    def __init__(self, rows: Sequence[Sequence[Any]]) -> None:
        """From the statement's one row."""
        (row,) = rows  # the base table has one row
        r = GatewayReads
        values: list[Sequence[Any]] = []
        at = 0
        for columns in r.PARTS:
            values.append(row[at : at + len(columns)])
            at += len(columns)
        (
            kill_global,
            kill_strategy,
            safe,
            runtime,
            strategy,
            version,
            latest,
            opening,
            peak,
            limits,
            own,
        ) = values
        # None when the global row is missing (the caller recreates it and reads again).
        self.kill_switch: KillSwitchView | None = None
        if kill_global[0] is not None:
            _, global_active, global_reason = r.KILL_GLOBAL.values(kill_global)
            strategy_active, strategy_reason = r.KILL_STRATEGY.values(kill_strategy)
            if global_active:
                self.kill_switch = KillSwitchView(global_active=True, global_reason=global_reason)
            elif strategy_active:
                self.kill_switch = KillSwitchView(
                    strategy_active=True, strategy_reason=strategy_reason
                )
            else:
                self.kill_switch = KillSwitchView()
        self.safe_mode_reason: str | None = (
            r.SAFE_MODE.values(safe)[0] if row[-1] is not None else None
        )
        self.runtime: StrategyRuntime | None = (
            r.RUNTIME.instance(runtime) if runtime[0] is not None else None
        )
        # The strategy's name and mode (None for a read without a strategy).
        self.strategy: tuple[str, str] | None = None
        if strategy[0] is not None:
            name, strategy_mode = r.STRATEGY.values(strategy)
            self.strategy = (name, strategy_mode)
        self.version: tuple[int, str] | None = None
        if version[0] is not None:
            version_id, content_hash = r.VERSION.values(version)
            self.version = (version_id, content_hash)
        self.account: Account | None = None
        if latest[0] is not None:
            equity, cash = r.LATEST.values(latest)
            self.account = Account(
                equity=equity,
                cash=cash,
                opening=r.OPENING.values(opening)[0],
                peak=r.OPENING.values(peak)[0],
            )
        self.limits = (
            RiskLimits(**r.LIMITS.as_dict(limits)) if limits[0] is not None else RiskLimits()
        )
        self.strategy_limits = (
            StrategyLimits(**r.STRATEGY_LIMITS.as_dict(own))
            if own[0] is not None
            else StrategyLimits()
        )


@dataclass(frozen=True)
class Account:
    """The account as the portfolio limits read it: the latest snapshot's equity and cash, the
    session's first snapshot's equity and the highest equity ever recorded."""

    equity: Decimal
    cash: Decimal
    opening: Decimal | None
    peak: Decimal | None


def account_read(mode: str, now: datetime) -> Account | None:
    """The account of ``mode`` (None before the first snapshot)."""
    return GatewayReads.read(None, mode, now).account


@functools.lru_cache(maxsize=1024)
def risk_overrides(version_id: int, content_hash: str) -> RiskOverrides | None:
    """The ``risk:`` section of a stored strategy version, validated as ``as_config`` does.

    Versions are append-only and named by the hash of their config, so the parsed section is
    kept per (id, hash): a reused id (a test database rolled back) has another hash.
    """
    return StrategyVersion.objects.select_related("strategy").get(pk=version_id).as_config().risk

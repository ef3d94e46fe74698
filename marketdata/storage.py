"""Idempotent bar storage: upsert on (instrument, timeframe, ts), vendor-specific SQL.

Re-writing a bar with identical values changes nothing (not even ``ingested_at``); a
corrected bar updates in place. PostgreSQL streams a chunk whose time range holds no stored
bar (a backfill) with COPY straight into the table; otherwise it COPYs into a temporary table
and merges with one INSERT ... ON CONFLICT. SQLite uses executemany with the same ON
CONFLICT clause. Callers wrap a call in ``transaction.atomic()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from marketdata.domain import BarRecord, Timeframe
from marketdata.models import Bar

VALUE_COLUMNS = ("open", "high", "low", "close", "volume", "vwap", "trade_count")
ROW_COLUMNS = ("ts", *VALUE_COLUMNS, "source")
STAGE_TABLE = "marketdata_bar_stage"


def row_values(b: BarRecord, default_source: str) -> tuple[Any, ...]:
    """A bar's values in ROW_COLUMNS order."""
    return (
        b.ts,
        b.open,
        b.high,
        b.low,
        b.close,
        b.volume,
        b.vwap,
        b.trade_count,
        b.source or default_source,
    )


@dataclass(frozen=True)
class UpsertResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def written(self) -> int:
        return self.inserted + self.updated

    def __add__(self, other: UpsertResult) -> UpsertResult:
        return UpsertResult(
            self.inserted + other.inserted,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
        )


def bars_upsert(
    *, instrument_id: int, timeframe: Timeframe, bars: Sequence[BarRecord], default_source: str
) -> UpsertResult:
    """Insert new bars, update changed ones, leave identical ones untouched."""
    if not bars:
        return UpsertResult()
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("bars_upsert must run inside transaction.atomic()")
    if connection.vendor == "postgresql":
        inserted, updated = _upsert_postgres(instrument_id, timeframe, bars, default_source)
    else:
        inserted, updated = _upsert_generic(instrument_id, timeframe, bars, default_source)
    return UpsertResult(inserted, updated, len(bars) - inserted - updated)


def _conflict_clause(table: str) -> str:
    q = connection.ops.quote_name
    assignments = ", ".join(
        f"{q(c)} = excluded.{q(c)}" for c in (*VALUE_COLUMNS, "source", "ingested_at")
    )
    changed = " OR ".join(f"{table}.{q(c)} IS DISTINCT FROM excluded.{q(c)}" for c in VALUE_COLUMNS)
    if connection.vendor == "sqlite":
        changed = changed.replace("IS DISTINCT FROM", "IS NOT")
    return (
        f"ON CONFLICT ({q('instrument_id')}, {q('timeframe')}, {q('ts')}) "
        f"DO UPDATE SET {assignments} WHERE {changed}"
    )


def _upsert_postgres(
    instrument_id: int, timeframe: Timeframe, bars: Sequence[BarRecord], default_source: str
) -> tuple[int, int]:
    """COPY straight into the table when the range is empty (a backfill), else merge."""
    q = connection.ops.quote_name
    table = q(Bar._meta.db_table)
    first, last = min(b.ts for b in bars), max(b.ts for b in bars)
    if not _range_occupied(table, instrument_id, timeframe, first, last):
        try:
            with transaction.atomic():  # a savepoint: a concurrent writer's rows roll it back
                _copy_rows(table, instrument_id, timeframe, bars, default_source)
            return len(bars), 0
        except (IntegrityError, psycopg.errors.UniqueViolation):
            pass  # another process stored some of these bars meanwhile: merge instead
    return _merge_postgres(table, instrument_id, timeframe, bars, default_source)


def _range_occupied(
    table: str, instrument_id: int, timeframe: Timeframe, first: datetime, last: datetime
) -> bool:
    q = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {q('instrument_id')} = %s"
            f" AND {q('timeframe')} = %s AND {q('ts')} BETWEEN %s AND %s)",
            [instrument_id, timeframe.value, first, last],
        )
        (occupied,) = cursor.fetchone()
    return bool(occupied)


def _copy_rows(
    table: str,
    instrument_id: int,
    timeframe: Timeframe,
    bars: Sequence[BarRecord],
    default_source: str,
) -> None:
    q = connection.ops.quote_name
    columns = ", ".join(q(c) for c in ("instrument_id", "timeframe", *ROW_COLUMNS, "ingested_at"))
    now, tf = timezone.now(), timeframe.value
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
    ):
        for b in bars:
            copy.write_row((instrument_id, tf, *row_values(b, default_source), now))


def _merge_postgres(
    table: str,
    instrument_id: int,
    timeframe: Timeframe,
    bars: Sequence[BarRecord],
    default_source: str,
) -> tuple[int, int]:
    q = connection.ops.quote_name
    columns = ", ".join(q(c) for c in ROW_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {STAGE_TABLE} "
            f"(ts timestamptz, open numeric, high numeric, low numeric, close numeric, "
            f"volume numeric, vwap numeric, trade_count bigint, source varchar(32)) "
            f"ON COMMIT DELETE ROWS"
        )
        cursor.execute(f"TRUNCATE {STAGE_TABLE}")
        with cursor.cursor.copy(f"COPY {STAGE_TABLE} ({columns}) FROM STDIN") as copy:
            for b in bars:
                copy.write_row(row_values(b, default_source))
        cursor.execute(
            f"WITH merged AS ("
            f" INSERT INTO {table} ({q('instrument_id')}, {q('timeframe')}, {columns}, {q('ingested_at')})"
            f" SELECT %s, %s, {columns}, %s FROM {STAGE_TABLE}"
            f" {_conflict_clause(table)}"
            f" RETURNING (xmax = 0) AS inserted)"
            f" SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM merged",
            [instrument_id, timeframe.value, timezone.now()],
        )
        inserted, updated = cursor.fetchone()
    return int(inserted), int(updated)


def _upsert_generic(
    instrument_id: int, timeframe: Timeframe, bars: Sequence[BarRecord], default_source: str
) -> tuple[int, int]:
    q = connection.ops.quote_name
    ops = connection.ops
    table = q(Bar._meta.db_table)
    names = ("instrument_id", "timeframe", *ROW_COLUMNS, "ingested_at")
    placeholders = ", ".join(["%s"] * len(names))
    now = ops.adapt_datetimefield_value(timezone.now())

    def dec(value: Decimal | None) -> Any:
        return None if value is None else ops.adapt_decimalfield_value(value)

    rows = [
        (
            instrument_id,
            timeframe.value,
            ops.adapt_datetimefield_value(b.ts),
            dec(b.open),
            dec(b.high),
            dec(b.low),
            dec(b.close),
            dec(b.volume),
            dec(b.vwap),
            b.trade_count,
            b.source or default_source,
            now,
        )
        for b in bars
    ]
    existing = Bar.objects.filter(
        instrument_id=instrument_id,
        timeframe=timeframe.value,
        ts__gte=min(b.ts for b in bars),
        ts__lte=max(b.ts for b in bars),
    )
    before = existing.count()
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} ({', '.join(q(n) for n in names)}) VALUES ({placeholders}) "
            f"{_conflict_clause(table)}",
            rows,
        )
        changed = max(cursor.rowcount, 0)
    inserted = existing.count() - before
    return inserted, changed - inserted

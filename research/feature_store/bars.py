"""Reads of the bars behind a cache entry: where the warmup starts, and their fingerprint.

The fingerprint is checked on every load, so it is computed in the database on PostgreSQL
(sha256 over the ordered rows: about 60 ms for 20,000 bars, against about 450 ms to load
them into a frame); a cache hit then never loads the bars. Other databases (the embedded
SQLite mode) hash the rows in Python. Fingerprints of different engines never meet.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection

from marketdata.domain import Timeframe
from marketdata.models import Bar, Instrument
from quant.errors import NotFoundError

OHLCV = ("open", "high", "low", "close", "volume")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class BarsSpan:
    """The stored bars of one instrument and timeframe in [first, end]."""

    instrument_id: int
    first: datetime
    end: datetime
    count: int
    last_ts: datetime | None
    fingerprint: str


def bars_span(
    *, symbol: str, timeframe: Timeframe, start: datetime, end: datetime, warmup: int
) -> BarsSpan:
    """The bars of [start, end] and up to ``warmup`` bars before ``start``, fingerprinted.

    Raises NotFoundError when the instrument is unknown or has no bar in [start, end].
    """
    instrument_id = Instrument.objects.filter(symbol=symbol).values_list("pk", flat=True).first()
    if instrument_id is None:
        raise NotFoundError(f"unknown instrument {symbol!r}: no bars are stored for it")
    bars = Bar.objects.filter(instrument_id=instrument_id, timeframe=timeframe.value)
    first = start
    if warmup > 0:
        earlier = list(
            bars.filter(ts__lt=start).order_by("-ts").values_list("ts", flat=True)[:warmup]
        )
        first = earlier[-1] if earlier else start
    if connection.vendor == "postgresql":
        count, last_ts, fingerprint = _fingerprint_sql(instrument_id, timeframe, first, end)
    else:
        count, last_ts, fingerprint = _fingerprint_rows(instrument_id, timeframe, first, end)
    if last_ts is None or last_ts < start:
        raise NotFoundError(
            f"no {timeframe.value} bars of {symbol} between {start.isoformat()} and {end.isoformat()}"
        )
    return BarsSpan(instrument_id, first, end, count, last_ts, fingerprint)


def _fingerprint_sql(
    instrument_id: int, timeframe: Timeframe, first: datetime, end: datetime
) -> tuple[int, datetime | None, str]:
    q = connection.ops.quote_name
    values = ", ".join(q(c) for c in OHLCV)
    sql = (
        "SELECT count(*), max(ts), encode(sha256(convert_to(coalesce(string_agg("
        f"concat_ws(',', (extract(epoch FROM ts) * 1000000)::bigint, {values}), ';' "
        "ORDER BY ts), ''), 'UTF8')), 'hex') "
        f"FROM {q(Bar._meta.db_table)} "
        f"WHERE {q('instrument_id')} = %s AND {q('timeframe')} = %s AND ts >= %s AND ts <= %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [instrument_id, timeframe.value, first, end])
        count, last_ts, digest = cursor.fetchone()
    return int(count), last_ts, str(digest)


def _fingerprint_rows(
    instrument_id: int, timeframe: Timeframe, first: datetime, end: datetime
) -> tuple[int, datetime | None, str]:
    rows = (
        Bar.objects.filter(
            instrument_id=instrument_id, timeframe=timeframe.value, ts__gte=first, ts__lte=end
        )
        .order_by("ts")
        .values_list("ts", *OHLCV)
    )
    digest = hashlib.sha256()
    count, last_ts = 0, None
    for ts, *values in rows.iterator(chunk_size=5000):
        micros = (ts - EPOCH) // MICROSECOND
        digest.update(",".join([str(micros), *map(str, values)]).encode())
        digest.update(b";")
        count, last_ts = count + 1, ts
    return count, last_ts, digest.hexdigest()

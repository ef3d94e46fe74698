"""Ingestion benchmark: N one-minute bars through the ingestion service vs raw COPY.

    .venv/bin/python benchmarks/ingest.py                 # 1,000,000 bars (make bench)
    .venv/bin/python benchmarks/ingest.py --bars 50000    # a quick check

Both sides stream the same rows from the same seeded synthetic provider, in the same
process, into PostgreSQL tables with the same columns and unique index:

- service: ``ingestion_job_create`` + ``ingestion_job_run`` (chunking, validation, COPY into
  a staging table, ``INSERT ... ON CONFLICT DO UPDATE``, progress committed per chunk);
- raw COPY: one ``COPY ... FROM STDIN`` per symbol straight into an empty copy of the table.

Bar generation is timed on its own too, so the ratio can be read with and without it (the
net figure understates the service: raw COPY overlaps Python generation with the server's
insert work, the service fetches a whole chunk before writing it). A second service pass
over the same range measures a re-ingest of unchanged data. Each timed phase starts after
a CHECKPOINT (when the role may run one), so no phase pays for the previous one's writes.
Peak memory is the process's maximum RSS. The last line is JSON for scripts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/quant_bench"
SYMBOLS = ["BMA", "BMB", "BMC", "BMD", "BME", "BMF", "BMG", "BMH", "BMI", "BMJ"]
COPY_TABLE = "bench_bar_copy"
FIRST_DAY = datetime(2022, 1, 3, tzinfo=UTC)


def report(label: str, bars: int, seconds: float, extra: str = "") -> None:
    print(
        f"{label:<19}: {bars:>9,} bars in {seconds:6.2f} s = {bars / seconds:>9,.0f} bars/s{extra}"
    )


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def checkpoint() -> None:
    """Flush the previous phase's dirty pages now rather than during the next timed phase."""
    from django.db import DatabaseError, connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("CHECKPOINT")
    except DatabaseError:  # not a superuser / pg_checkpoint member: measure without it
        pass


def plan(bars: int) -> tuple[list[str], datetime, datetime]:
    """Symbols and a range of sessions holding about ``bars`` one-minute bars."""
    from quant.calendar import MarketCalendar, day_start

    calendar = MarketCalendar("XNYS")
    symbols = SYMBOLS[: max(1, min(len(SYMBOLS), math.ceil(bars / 390 / 20)))]
    per_symbol = bars / len(symbols)
    sessions = calendar.sessions(FIRST_DAY.date(), datetime(2030, 1, 1).date())
    total, i = 0, 0
    while total < per_symbol and i < len(sessions):
        total += len(calendar.session_minutes(sessions[i]))
        i += 1
    return symbols, day_start(sessions[0]), calendar.session_close(sessions[i - 1])


def provider() -> Any:
    from marketdata.providers.synthetic import SyntheticProvider
    from quant.clock import ManualClock

    return SyntheticProvider(seed=20240101, clock=ManualClock(datetime(2100, 1, 1, tzinfo=UTC)))


def time_generation(symbols: list[str], start: datetime, end: datetime) -> tuple[int, float]:
    from marketdata.domain import Timeframe

    source, count = provider(), 0
    checkpoint()
    began = time.perf_counter()
    for symbol in symbols:
        for _ in source.iter_bars(symbol, start, end, Timeframe.MIN_1):
            count += 1
    return count, time.perf_counter() - began


def time_service(symbols: list[str], start: datetime, end: datetime) -> tuple[Any, float]:
    from marketdata import services
    from marketdata.domain import Timeframe

    job = services.ingestion_job_create(
        provider="synthetic", symbols=symbols, timeframe=Timeframe.MIN_1, start=start, end=end
    )
    checkpoint()
    began = time.perf_counter()
    job = services.ingestion_job_run(job_id=job.pk, provider=provider())
    elapsed = time.perf_counter() - began
    if job.status != "SUCCEEDED":
        raise SystemExit(f"ingestion job #{job.pk} {job.status}: {job.error}")
    return job, elapsed


def time_raw_copy(symbols: list[str], start: datetime, end: datetime) -> tuple[int, float]:
    from django.db import connection
    from django.utils import timezone

    from marketdata.domain import Timeframe
    from marketdata.models import Bar, Instrument
    from marketdata.storage import row_values

    table = Bar._meta.db_table
    ids = dict(Instrument.objects.filter(symbol__in=symbols).values_list("symbol", "pk"))
    columns = "instrument_id, timeframe, ts, open, high, low, close, volume, vwap, trade_count, source, ingested_at"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {COPY_TABLE}")
        cursor.execute(
            f"CREATE TABLE {COPY_TABLE} (LIKE {table} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS)"
        )
        cursor.execute(
            f"CREATE UNIQUE INDEX {COPY_TABLE}_key ON {COPY_TABLE} (instrument_id, timeframe, ts)"
        )
    checkpoint()
    connection.close()
    source, count, now = provider(), 0, timezone.now()
    began = time.perf_counter()
    with connection.cursor() as cursor:
        for symbol in symbols:
            with cursor.cursor.copy(f"COPY {COPY_TABLE} ({columns}) FROM STDIN") as copy:
                for b in source.iter_bars(symbol, start, end, Timeframe.MIN_1):
                    copy.write_row((ids[symbol], "1Min", *row_values(b, "synthetic"), now))
                    count += 1
    elapsed = time.perf_counter() - began
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {COPY_TABLE}")
        stored = cursor.fetchone()[0]
        cursor.execute(f"DROP TABLE {COPY_TABLE}")
    if stored != count:
        raise SystemExit(f"raw COPY stored {stored} rows of {count}")
    return count, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    args = parser.parse_args()
    wall_began = time.perf_counter()
    if not args.database_url.startswith("postgres"):
        raise SystemExit("the benchmark measures PostgreSQL: pass a postgres:// --database-url")

    from tests.support.postgres import benchmark_django_setup

    benchmark_django_setup(args.database_url)
    from django.db import connection

    from marketdata.models import Bar, IngestionJob

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {Bar._meta.db_table}")
    IngestionJob.objects.all().delete()

    symbols, start, end = plan(args.bars)
    name = connection.settings_dict["NAME"]
    print(
        f"{len(symbols)} symbols x 1Min bars, {start:%Y-%m-%d} .. {end:%Y-%m-%d}, PostgreSQL {name}"
    )

    generated, gen_s = time_generation(symbols, start, end)
    report("generation only", generated, gen_s)

    job, service_s = time_service(symbols, start, end)
    service_peak = peak_mb()
    if job.rows_written != generated:
        raise SystemExit(f"service wrote {job.rows_written} rows, expected {generated}")
    report(
        "ingestion service",
        generated,
        service_s,
        f"  ({job.chunks_total} chunks, peak RSS {service_peak:.0f} MB)",
    )

    copied, copy_s = time_raw_copy(symbols, start, end)
    report("raw COPY", copied, copy_s)

    again, again_s = time_service(symbols, start, end)
    report(
        "re-ingest unchanged", again.rows_unchanged, again_s, f"  ({again.rows_written} written)"
    )

    ratio = copy_s / service_s
    ratio_net = (
        (copy_s - gen_s) / (service_s - gen_s)
        if service_s > gen_s and copy_s > gen_s
        else float("nan")
    )
    peak = peak_mb()
    wall = time.perf_counter() - wall_began
    print(
        f"ratio service/COPY : {ratio:.2f}x the speed of raw COPY (goal >= 0.50); "
        f"without generation {ratio_net:.2f}x"
    )
    print(f"peak RSS           : {peak:.0f} MB (goal < 500 MB)")
    print(f"wall time          : {wall:.1f} s (set-up, all phases and checks)")
    print(
        json.dumps(
            {
                "bars": generated,
                "symbols": len(symbols),
                "generation_s": round(gen_s, 3),
                "service_s": round(service_s, 3),
                "copy_s": round(copy_s, 3),
                "reingest_s": round(again_s, 3),
                "service_bars_per_s": round(generated / service_s),
                "copy_bars_per_s": round(copied / copy_s),
                "ratio": round(ratio, 3),
                "ratio_without_generation": round(ratio_net, 3),
                "peak_rss_mb": round(peak, 1),
                "service_peak_rss_mb": round(service_peak, 1),
                "wall_s": round(wall, 1),
            }
        )
    )


if __name__ == "__main__":
    main()

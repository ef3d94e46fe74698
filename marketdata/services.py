"""Writes of the market data app: instruments, bar ingestion jobs, daily updates, quality reports.

An ingestion job is split into chunks per symbol. Each chunk is fetched whole, validated,
and written in one transaction together with the job's progress, so a crash loses at most
the chunk in flight and a rerun continues after the last committed chunk. Re-ingesting a
range changes nothing (upserts skip identical bars); corrected bars update in place.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import DataError, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from common.jobs import JobKind, enqueue_on_commit, interrupted, job_beating
from marketdata.domain import BarRecord, Timeframe, validate_bars
from marketdata.models import Bar, DataQualityReport, IngestionJob, Instrument, JobStatus
from marketdata.providers import PROVIDERS, DataProvider, ProviderError, build_provider
from marketdata.quality import check_bars
from marketdata.storage import UpsertResult, bars_upsert
from quant.calendar import MarketCalendar
from quant.clock import Clock, SystemClock, ensure_utc
from quant.errors import ConflictError, NotFoundError, ValidationError

log = structlog.get_logger(__name__)

SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9.\-/]{0,31}$")
SESSION_HOURS = 6.5
DEFAULT_BACKFILL_DAYS = 5 * 365


def normalize_symbols(symbols: Iterable[str]) -> list[str]:
    """Upper-case, de-duplicated symbols in the given order; raise naming any bad one."""
    result: list[str] = []
    for raw in symbols:
        symbol = raw.strip().upper()
        if not SYMBOL_RE.match(symbol):
            raise ValidationError(f"invalid symbol {raw!r}: use letters, digits, '.', '-' or '/'")
        if symbol not in result:
            result.append(symbol)
    if not result:
        raise ValidationError("no symbols given")
    return result


def plan_chunks(
    start: datetime, end: datetime, timeframe: Timeframe, chunk_bars: int
) -> list[tuple[datetime, datetime]]:
    """Consecutive inclusive windows covering [start, end], each about ``chunk_bars`` bars."""
    if timeframe is Timeframe.DAY_1:
        span = timedelta(days=math.ceil(chunk_bars * 7 / 5))
    else:
        bars_per_day = SESSION_HOURS * 3600 / timeframe.duration.total_seconds()
        span = timedelta(days=max(1, math.ceil(chunk_bars / bars_per_day * 7 / 5)))
    windows: list[tuple[datetime, datetime]] = []
    cursor = start
    while cursor <= end:
        upper = min(cursor + span, end + timedelta(microseconds=1))
        windows.append((cursor, upper - timedelta(microseconds=1)))
        cursor = upper
    return windows


def instrument_ensure(*, symbol: str, name: str = "") -> Instrument:
    instrument, _ = Instrument.objects.get_or_create(symbol=symbol, defaults={"name": name})
    return instrument


def bars_ingest(
    *, symbol: str, timeframe: Timeframe, bars: Sequence[BarRecord], source: str
) -> UpsertResult:
    """Validate and store one batch of bars atomically: all of them or none."""
    ordered = validate_bars(bars, source=source)
    with transaction.atomic():
        instrument = instrument_ensure(symbol=symbol)
        return bars_upsert(
            instrument_id=instrument.pk, timeframe=timeframe, bars=ordered, default_source=source
        )


def bars_ingest_chunks(
    *, symbol: str, timeframe: Timeframe, chunks: Iterable[Sequence[BarRecord]], source: str
) -> UpsertResult:
    """Validate and store a stream of bar chunks in time order in one transaction: all of
    them or none. Only one chunk is held at a time, so memory does not grow with the stream;
    an error from the stream (a file found bad while it is read) rolls everything back."""
    total = UpsertResult()
    last: datetime | None = None
    try:
        with transaction.atomic():
            instrument = instrument_ensure(symbol=symbol)
            for chunk in chunks:
                ordered = validate_bars(chunk, source=source)
                if not ordered:
                    continue
                if last is not None and ordered[0].ts <= last:
                    raise ValidationError(
                        f"{source}: chunks out of time order: {ordered[0].ts.isoformat()}"
                        f" after {last.isoformat()}"
                    )
                total += bars_upsert(
                    instrument_id=instrument.pk,
                    timeframe=timeframe,
                    bars=ordered,
                    default_source=source,
                )
                last = ordered[-1].ts
    except DataError as error:  # a value the columns cannot hold: validation should catch it
        raise ValidationError(f"{source}: the database refused a value: {error}") from error
    return total


def ingestion_job_create(
    *, provider: str, symbols: Iterable[str], timeframe: Timeframe, start: datetime, end: datetime
) -> IngestionJob:
    if provider not in PROVIDERS:
        raise ValidationError(f"unknown provider {provider!r}: use one of {', '.join(PROVIDERS)}")
    start, end = ensure_utc(start), ensure_utc(end)
    if timeframe is Timeframe.DAY_1:
        # Daily bars are stamped 00:00 UTC of the session date: chunk edges on day edges, so
        # a bar the vendor stamps at New York midnight can never fall between two chunks.
        start = start.replace(hour=0, minute=0, second=0, microsecond=0)
    if end <= start:
        raise ValidationError(f"end {end.isoformat()} must be after start {start.isoformat()}")
    symbols = normalize_symbols(symbols)
    chunks = len(plan_chunks(start, end, timeframe, settings.MARKETDATA_CHUNK_BARS))
    return IngestionJob.objects.create(
        provider=provider,
        symbols=symbols,
        timeframe=timeframe.value,
        start=start,
        end=end,
        chunks_total=chunks * len(symbols),
    )


def _transition(job: IngestionJob, allowed: Sequence[str], to: str, **fields: Any) -> bool:
    """Compare-and-swap the job's status; False when another process changed it first."""
    changed = IngestionJob.objects.filter(pk=job.pk, status__in=allowed).update(status=to, **fields)
    job.refresh_from_db()
    return changed == 1


def ingestion_job_run(
    *, job_id: int, provider: DataProvider | None = None, clock: Clock | None = None
) -> IngestionJob:
    """Run (or resume) a QUEUED job. A running or finished job is left as it is, so a message
    delivered twice runs it once; a job whose worker died is put back in the queue by the
    reaper (``INGESTION_JOBS``) and resumes after its last committed chunk."""
    clock = clock or SystemClock()
    job = IngestionJob.objects.get(pk=job_id)
    if not _transition(
        job,
        [JobStatus.QUEUED],
        JobStatus.RUNNING,
        attempts=F("attempts") + 1,
        started_at=clock.now(),
        heartbeat_at=timezone.now(),
        error="",
    ):
        log.info("ingestion.skip", job_id=job.pk, status=job.status)
        return job
    with job_beating(IngestionJob, job.pk):
        return _run(job, provider, clock)


def _run(job: IngestionJob, provider: DataProvider | None, clock: Clock) -> IngestionJob:
    log.info(
        "ingestion.start",
        job_id=job.pk,
        provider=job.provider,
        symbols=job.symbols,
        timeframe=job.timeframe,
        resume=bool(job.cursor),
    )
    try:
        source = provider or build_provider(
            job.provider,
            fallback=settings.MARKETDATA_FALLBACK_PROVIDER
            if job.provider == settings.MARKETDATA_PROVIDER
            else None,
        )
        for symbol in job.symbols:
            _ingest_symbol(job, symbol, source)
    except (ProviderError, ValidationError) as error:
        _transition(
            job, [JobStatus.RUNNING], JobStatus.FAILED, error=error.message, finished_at=clock.now()
        )
        log.warning("ingestion.failed", job_id=job.pk, error=error.message)
        return job
    except Exception as error:
        if interrupted(error):  # the reaper resumes it after its last committed chunk
            log.warning("ingestion.interrupted", job_id=job.pk, error=str(error))
            return job
        _transition(
            job,
            [JobStatus.RUNNING],
            JobStatus.FAILED,
            error=f"internal error: {error!r}",
            finished_at=clock.now(),
        )
        raise
    _transition(job, [JobStatus.RUNNING], JobStatus.SUCCEEDED, finished_at=clock.now())
    log.info(
        "ingestion.done", job_id=job.pk, rows_written=job.rows_written, unchanged=job.rows_unchanged
    )
    return job


def _ingest_symbol(job: IngestionJob, symbol: str, provider: DataProvider) -> None:
    timeframe = Timeframe(job.timeframe)
    committed = job.cursor.get(symbol)
    done_until = datetime.fromisoformat(committed) if committed else None
    for lo, hi in plan_chunks(job.start, job.end, timeframe, settings.MARKETDATA_CHUNK_BARS):
        if done_until is not None and hi <= done_until:
            continue
        fetched = provider.get_bars(symbol, lo, hi, timeframe)
        bars = [b for b in fetched if b.symbol == symbol and lo <= b.ts <= hi]
        ordered = validate_bars(
            bars, source=f"{provider.name} {symbol} {timeframe} {lo:%Y-%m-%d}..{hi:%Y-%m-%d}"
        )
        with transaction.atomic():
            instrument = instrument_ensure(symbol=symbol)
            result = bars_upsert(
                instrument_id=instrument.pk,
                timeframe=timeframe,
                bars=ordered,
                default_source=provider.name,
            )
            cursor = {**IngestionJob.objects.get(pk=job.pk).cursor, symbol: hi.isoformat()}
            IngestionJob.objects.filter(pk=job.pk).update(
                cursor=cursor,
                chunks_done=F("chunks_done") + 1,
                rows_written=F("rows_written") + result.written,
                rows_unchanged=F("rows_unchanged") + result.unchanged,
            )
        job.refresh_from_db()


def ingestion_job_fail(*, job: IngestionJob, message: str) -> bool:
    """A QUEUED job that never reached a worker (the broker refused it) fails with ``message``."""
    return _transition(
        job, [JobStatus.QUEUED], JobStatus.FAILED, error=message, finished_at=timezone.now()
    )


def ingestion_job_submit(*, job: IngestionJob) -> IngestionJob:
    """Queue the job (task ``marketdata.ingest``) once the surrounding transaction has
    committed; a broker that refuses it fails the job with the reason."""
    enqueue_on_commit(
        "marketdata.ingest",
        job.pk,
        # a resume finds the job by its status, not a task id
        queued=lambda task_id: IngestionJob.objects.filter(pk=job.pk).update(
            heartbeat_at=timezone.now()
        ),
        failed=lambda message: ingestion_job_fail(job=job, message=message),
        what="ingestion job",
    )
    return job


def ingestion_job_retry(*, job: IngestionJob) -> IngestionJob:
    """Put a failed job back in the queue; it resumes after its last committed chunk."""
    if not _transition(job, [JobStatus.FAILED], JobStatus.QUEUED, finished_at=None):
        raise ConflictError(f"job #{job.pk} is {job.status}; only FAILED jobs can be retried")
    return job


INGESTION_JOBS = JobKind(
    name="ingestion",
    model=IngestionJob,
    task="marketdata.ingest",
    queued=Q(status=JobStatus.QUEUED),
    running=Q(status=JobStatus.RUNNING),
    requeue=lambda: {"status": JobStatus.QUEUED},
    fail=lambda message, now: {"status": JobStatus.FAILED, "error": message, "finished_at": now},
)


def daily_update_plan(
    *, now: datetime, timeframe: Timeframe = Timeframe.DAY_1
) -> IngestionJob | None:
    """The job that brings every active instrument up to date, or None on a non-session day.

    It starts at the oldest last bar among the instruments (that bar included, so a vendor's
    late correction is picked up); identical bars are skipped by the upsert.
    """
    calendar = MarketCalendar(settings.MARKETDATA_EXCHANGE)
    if not calendar.is_session(now.date()):
        log.info("daily_update.no_session", day=str(now.date()))
        return None
    symbols = list(Instrument.objects.filter(active=True).values_list("symbol", flat=True))
    if not symbols:
        return None
    lasts = dict(
        Bar.objects.filter(timeframe=timeframe.value, instrument__active=True)
        .values_list("instrument__symbol")
        .annotate(last=Max("ts"))
        .values_list("instrument__symbol", "last")
    )
    start = (
        min(lasts.values())
        if len(lasts) == len(symbols)
        else now - timedelta(days=DEFAULT_BACKFILL_DAYS)
    )
    return ingestion_job_create(
        provider=settings.MARKETDATA_PROVIDER,
        symbols=symbols,
        timeframe=timeframe,
        start=start,
        end=now,
    )


def data_quality_run(
    *,
    symbols: Iterable[str] | None = None,
    timeframe: Timeframe = Timeframe.DAY_1,
    now: datetime | None = None,
) -> list[DataQualityReport]:
    """Check every (or the named) instrument's bars and store one report per instrument."""
    now = now or timezone.now()
    instruments = Instrument.objects.all()
    if symbols is not None:
        wanted = normalize_symbols(symbols)
        instruments = instruments.filter(symbol__in=wanted)
        unknown = sorted(set(wanted) - set(instruments.values_list("symbol", flat=True)))
        if unknown:
            raise NotFoundError(
                f"unknown instrument{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}"
            )
    reports = []
    for instrument in instruments.order_by("symbol"):
        rows = (
            Bar.objects.filter(instrument=instrument, timeframe=timeframe.value)
            .order_by("ts")
            .values_list("ts", "open", "high", "low", "close", "volume")
            .iterator(chunk_size=20_000)
        )
        result = check_bars(
            list(rows),
            timeframe=timeframe,
            calendar=MarketCalendar(instrument.exchange or "XNYS"),
            now=now,
        )
        reports.append(
            DataQualityReport.objects.create(
                instrument=instrument,
                timeframe=timeframe.value,
                checked_at=now,
                range_start=result.range_start,
                range_end=result.range_end,
                bar_count=result.bar_count,
                status=result.status,
                is_stale=result.is_stale,
                issue_counts=result.issue_counts,
                findings=result.findings_json(),
            )
        )
        log.info(
            "quality.checked",
            symbol=instrument.symbol,
            timeframe=timeframe.value,
            status=result.status,
            issues=result.issue_counts,
        )
    return reports

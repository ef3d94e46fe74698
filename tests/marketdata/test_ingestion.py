"""Ingestion jobs: idempotent upserts, resumable after a provider failure, all-or-nothing chunks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from marketdata import services
from marketdata.domain import BarRecord, Timeframe
from marketdata.models import Bar, IngestionJob, JobStatus
from marketdata.providers.base import DataProvider, FinalProviderError
from marketdata.providers.synthetic import SyntheticProvider
from marketdata.storage import bars_upsert
from quant.clock import ManualClock
from quant.errors import ConflictError, ValidationError

pytestmark = pytest.mark.django_db

NOW = datetime(2024, 7, 1, 21, 0, tzinfo=UTC)
START = datetime(2023, 1, 1, tzinfo=UTC)


def synthetic() -> SyntheticProvider:
    return SyntheticProvider(seed=7, clock=ManualClock(NOW))


class FailingAfter(DataProvider):
    """Answers ``ok_calls`` chunk requests, then fails hard (like a vendor outage)."""

    name = "synthetic"

    def __init__(self, inner: DataProvider, ok_calls: int) -> None:
        self.inner, self.ok_calls = inner, ok_calls
        self.calls: list[tuple[str, datetime]] = []

    def get_bars(
        self, symbol: str, start: datetime, end: datetime, timeframe: Timeframe
    ) -> list[BarRecord]:
        self.calls.append((symbol, start))
        if len(self.calls) > self.ok_calls:
            raise FinalProviderError("vendor answered 500 three times")
        return self.inner.get_bars(symbol, start, end, timeframe)


class Corrupting(DataProvider):
    """Returns the real bars with one bar broken (high below low) at position ``index``."""

    name = "synthetic"

    def __init__(self, inner: DataProvider, index: int) -> None:
        self.inner, self.index = inner, index

    def get_bars(
        self, symbol: str, start: datetime, end: datetime, timeframe: Timeframe
    ) -> list[BarRecord]:
        bars = self.inner.get_bars(symbol, start, end, timeframe)
        bad = bars[self.index]
        bars[self.index] = replace(bad, high=bad.low - Decimal("1"))
        return bars


def run(
    symbols: Sequence[str],
    provider: DataProvider,
    timeframe: Timeframe = Timeframe.DAY_1,
    start: datetime = START,
    end: datetime = NOW,
) -> IngestionJob:
    job = services.ingestion_job_create(
        provider="synthetic", symbols=symbols, timeframe=timeframe, start=start, end=end
    )
    return services.ingestion_job_run(job_id=job.pk, provider=provider)


def stored(symbol: str, timeframe: Timeframe = Timeframe.DAY_1) -> list[tuple[object, ...]]:
    return list(
        Bar.objects.filter(instrument__symbol=symbol, timeframe=timeframe.value)
        .order_by("ts")
        .values_list("ts", "open", "high", "low", "close", "volume")
    )


def test_ingestion_stores_exactly_the_provider_bars() -> None:
    job = run(["aapl", "MSFT"], synthetic())
    assert job.status == JobStatus.SUCCEEDED
    expected = synthetic().get_bars("AAPL", START, NOW, Timeframe.DAY_1)
    assert stored("AAPL") == [(b.ts, b.open, b.high, b.low, b.close, b.volume) for b in expected]
    assert job.rows_written == Bar.objects.count() == 2 * len(expected)
    assert job.chunks_done == job.chunks_total


def test_reingesting_the_same_range_writes_nothing() -> None:
    first = run(["AAPL"], synthetic())
    before = stored("AAPL")
    again = run(["AAPL"], synthetic())
    assert again.status == JobStatus.SUCCEEDED
    assert (again.rows_written, again.rows_unchanged) == (0, first.rows_written)
    assert stored("AAPL") == before


def test_a_vendor_correction_updates_the_bar_in_place() -> None:
    run(["AAPL"], synthetic())
    ts = stored("AAPL")[10][0]
    bars = [b for b in synthetic().get_bars("AAPL", START, NOW, Timeframe.DAY_1) if b.ts == ts]
    corrected = replace(bars[0], volume=bars[0].volume + 100)
    from django.db import transaction

    with transaction.atomic():
        result = bars_upsert(
            instrument_id=Bar.objects.first().instrument_id,  # type: ignore[union-attr]
            timeframe=Timeframe.DAY_1,
            bars=[corrected],
            default_source="fix",
        )
    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 0)
    assert Bar.objects.get(instrument__symbol="AAPL", ts=ts).volume == corrected.volume


@override_settings(MARKETDATA_CHUNK_BARS=2000)
def test_a_failed_job_resumes_after_its_last_committed_chunk() -> None:
    minute_start, minute_end = datetime(2024, 6, 3, tzinfo=UTC), datetime(2024, 6, 29, tzinfo=UTC)
    flaky = FailingAfter(synthetic(), ok_calls=3)
    job = run(["AAPL", "MSFT"], flaky, Timeframe.MIN_1, minute_start, minute_end)
    assert job.status == JobStatus.FAILED
    assert "vendor answered 500" in job.error
    assert job.chunks_done == 3 and job.chunks_total > 3
    kept = Bar.objects.count()
    assert kept == job.rows_written > 0

    services.ingestion_job_retry(job=job)
    steady = FailingAfter(synthetic(), ok_calls=10_000)
    job = services.ingestion_job_run(job_id=job.pk, provider=steady)
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2
    assert job.chunks_done == job.chunks_total
    # The three committed chunks were not fetched again.
    assert not set(flaky.calls[:3]) & set(steady.calls)
    for symbol in ("AAPL", "MSFT"):
        source = synthetic().get_bars(symbol, minute_start, minute_end, Timeframe.MIN_1)
        assert stored(symbol, Timeframe.MIN_1) == [
            (b.ts, b.open, b.high, b.low, b.close, b.volume) for b in source
        ]
    assert job.rows_written == Bar.objects.count()


def test_a_bad_bar_fails_the_job_without_writing_its_chunk() -> None:
    job = run(["AAPL"], Corrupting(synthetic(), index=-1))
    assert job.status == JobStatus.FAILED
    assert "high" in job.error and "AAPL" in job.error
    assert Bar.objects.count() == 0


def test_only_failed_jobs_can_be_retried_and_finished_jobs_are_not_rerun() -> None:
    job = run(["AAPL"], synthetic())
    with pytest.raises(ConflictError, match="only FAILED"):
        services.ingestion_job_retry(job=job)
    again = services.ingestion_job_run(
        job_id=job.pk, provider=FailingAfter(synthetic(), ok_calls=0)
    )
    assert again.status == JobStatus.SUCCEEDED and again.attempts == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"provider": "nope"}, "unknown provider 'nope'"),
        ({"end": START}, "must be after start"),
        ({"symbols": ["AAPL", "bad symbol!"]}, "bad symbol"),
        ({"symbols": []}, "symbol"),
    ],
)
def test_bad_job_parameters_are_rejected_with_a_clear_error(
    kwargs: dict[str, object], message: str
) -> None:
    params: dict[str, object] = {
        "provider": "synthetic",
        "symbols": ["AAPL"],
        "timeframe": Timeframe.DAY_1,
        "start": START,
        "end": NOW,
        **kwargs,
    }
    with pytest.raises(ValidationError, match=message):
        services.ingestion_job_create(**params)  # type: ignore[arg-type]
    assert IngestionJob.objects.count() == 0


def test_daily_update_skips_days_without_a_session() -> None:
    run(["AAPL"], synthetic())
    saturday = datetime(2024, 7, 6, 22, 15, tzinfo=UTC)
    assert services.daily_update_plan(now=saturday) is None
    monday = datetime(2024, 7, 8, 22, 15, tzinfo=UTC)
    job = services.daily_update_plan(now=monday)
    assert job is not None and job.symbols == ["AAPL"]
    assert job.start == Bar.objects.filter(instrument__symbol="AAPL").latest("ts").ts


def test_ingest_bars_command_runs_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    call_command(
        "ingest_bars",
        "--provider",
        "synthetic",
        "--symbols",
        "spy,qqq",
        "--start",
        "2024-01-01",
        "--end",
        "2024-03-01",
    )
    out = capsys.readouterr().out
    assert "SUCCEEDED" in out and Bar.objects.filter(instrument__symbol="QQQ").count() > 30
    call_command(
        "ingest_bars",
        "--provider",
        "synthetic",
        "--symbols",
        "SPY",
        "--start",
        "2024-01-01",
        "--end",
        "2024-03-01",
    )
    assert " 0 bars written" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--symbols", "AAPL", "--timeframe", "2Min"], "unknown timeframe '2Min'"),
        (["--symbols", "AAPL", "--start", "yesterday"], "not an ISO date"),
        (["--provider", "synthetic"], "--symbols is required"),
        (["--resume", "999"], "no ingestion job #999"),
    ],
)
def test_ingest_bars_command_rejects_bad_arguments(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("ingest_bars", *args)


def test_a_concurrent_writer_during_a_backfill_falls_back_to_the_merge(
    monkeypatch: pytest.MonkeyPatch, on_postgres: bool
) -> None:
    """The empty-range COPY path loses the race → its savepoint rolls back → merge instead."""
    if not on_postgres:
        pytest.skip("the COPY fast path is PostgreSQL's")
    from django.db import transaction

    from marketdata import storage

    bars = synthetic().get_bars("AAPL", datetime(2024, 6, 3, tzinfo=UTC), NOW, Timeframe.DAY_1)
    instrument = services.instrument_ensure(symbol="AAPL")

    def raced_check(table: str, instrument_id: int, timeframe: Timeframe, *_: object) -> bool:
        b = bars[3]  # "another process" stores one of the bars right after the range was checked
        Bar.objects.create(
            instrument_id=instrument_id,
            timeframe=timeframe.value,
            ts=b.ts,
            open=b.open,
            high=b.high,
            low=b.low,
            close=b.close,
            volume=b.volume,
            vwap=b.vwap,
            trade_count=b.trade_count,
            source="synthetic",
        )
        return False

    monkeypatch.setattr(storage, "_range_occupied", raced_check)
    with transaction.atomic():
        result = bars_upsert(
            instrument_id=instrument.pk,
            timeframe=Timeframe.DAY_1,
            bars=bars,
            default_source="synthetic",
        )
    assert (result.inserted, result.updated, result.unchanged) == (len(bars) - 1, 0, 1)
    assert stored("AAPL") == [(b.ts, b.open, b.high, b.low, b.close, b.volume) for b in bars]

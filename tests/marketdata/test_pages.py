"""The landing page and the market data admin, as an operator sees them."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from marketdata import services
from marketdata.demo import DEMO_INSTRUMENTS, demo_seed
from marketdata.domain import Timeframe
from marketdata.models import Bar, DataQualityReport, IngestionJob, Instrument, JobStatus
from marketdata.providers.synthetic import SyntheticProvider
from quant.clock import ManualClock

pytestmark = pytest.mark.django_db

THEN = datetime(2024, 7, 1, 21, 0, tzinfo=UTC)


def test_landing_lists_instruments_with_counts_and_freshness(viewer: Client) -> None:
    job = services.ingestion_job_create(
        provider="synthetic",
        symbols=["AAPL"],
        timeframe=Timeframe.DAY_1,
        start=datetime(2024, 6, 1, tzinfo=UTC),
        end=THEN,
    )
    services.ingestion_job_run(job_id=job.pk, provider=SyntheticProvider(clock=ManualClock(THEN)))
    services.instrument_ensure(symbol="MSFT")
    page = viewer.get("/marketdata").content.decode()
    count = Bar.objects.filter(instrument__symbol="AAPL").count()
    assert "AAPL" in page and f">{count}<" in page
    assert "stale" in page  # the data ends in 2024, the clock says today
    assert "no data" in page  # MSFT has no bars
    assert "Succeeded" in page and "synthetic" in page


def test_landing_shows_the_latest_quality_status(viewer: Client) -> None:
    job = services.ingestion_job_create(
        provider="synthetic",
        symbols=["AAPL", "MSFT"],
        timeframe=Timeframe.DAY_1,
        start=datetime(2024, 6, 1, tzinfo=UTC),
        end=THEN,
    )
    services.ingestion_job_run(job_id=job.pk, provider=SyntheticProvider(clock=ManualClock(THEN)))
    services.data_quality_run(symbols=["AAPL"], now=datetime(2024, 6, 1, tzinfo=UTC))
    services.data_quality_run(symbols=["AAPL"], now=THEN)  # the newer report wins
    page = viewer.get("/marketdata").content.decode()
    assert ">OK<" in page and "not checked" in page  # MSFT was never checked


def test_daily_update_task_ingests_then_checks_quality(monkeypatch: pytest.MonkeyPatch) -> None:
    from marketdata import tasks

    services.instrument_ensure(symbol="SPY")
    monday = datetime(2024, 7, 8, 22, 15, tzinfo=UTC)
    monkeypatch.setattr("django.utils.timezone.now", lambda: monday)
    real_run = services.ingestion_job_run
    monkeypatch.setattr(
        services,
        "ingestion_job_run",
        lambda *, job_id: real_run(
            job_id=job_id, provider=SyntheticProvider(clock=ManualClock(monday))
        ),
    )
    tasks.daily_update()
    assert IngestionJob.objects.get().status == JobStatus.SUCCEEDED
    report = DataQualityReport.objects.get(instrument__symbol="SPY")
    assert report.bar_count > 1000 and report.status == "OK"


def test_landing_without_data_explains_how_to_get_some(viewer: Client) -> None:
    assert "seed_demo" in viewer.get("/marketdata").content.decode()


def test_landing_needs_a_signed_in_user(client: Client) -> None:
    assert client.get("/marketdata")["Location"] == "/signin?next=/marketdata"


def test_demo_seed_is_complete_fresh_and_reusable() -> None:
    now = datetime.now(UTC)
    first = demo_seed(now=now, years=1)
    assert first.job is not None and first.job.status == JobStatus.SUCCEEDED
    assert first.admin_password and User.objects.get(username="admin").check_password(
        first.admin_password
    )
    assert set(Instrument.objects.values_list("symbol", flat=True)) == set(DEMO_INSTRUMENTS)
    bars = Bar.objects.count()
    assert bars > 240 * len(DEMO_INSTRUMENTS)
    again = demo_seed(now=now, years=1)
    assert again.job is None and again.admin_password is None
    assert Bar.objects.count() == bars


@pytest.fixture
def admin_client(client: Client) -> Client:
    user = User.objects.create_superuser("root", password="pw-for-tests-only")
    client.force_login(user)
    return client


@pytest.mark.parametrize("model", ["instrument", "bar", "ingestionjob", "dataqualityreport"])
def test_admin_lists_render(admin_client: Client, model: str) -> None:
    services.ingestion_job_run(
        job_id=services.ingestion_job_create(
            provider="synthetic",
            symbols=["SPY"],
            timeframe=Timeframe.DAY_1,
            start=datetime(2024, 6, 1, tzinfo=UTC),
            end=THEN,
        ).pk,
        provider=SyntheticProvider(clock=ManualClock(THEN)),
    )
    DataQualityReport.objects.create(
        instrument=Instrument.objects.get(symbol="SPY"),
        timeframe="1Day",
        checked_at=THEN,
        status="OK",
        bar_count=20,
    )
    response = admin_client.get(reverse(f"admin:marketdata_{model}_changelist"))
    assert response.status_code == 200
    assert "SPY" in response.content.decode() or model == "ingestionjob"


def test_bars_are_read_only_in_the_admin(admin_client: Client) -> None:
    assert admin_client.get(reverse("admin:marketdata_bar_add")).status_code == 403


def test_admin_retry_action_requeues_failed_jobs_only(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued: list[int] = []

    def delay(pk: int) -> SimpleNamespace:  # a Celery result: the task id
        queued.append(pk)
        return SimpleNamespace(id=f"task-{pk}")

    monkeypatch.setattr("marketdata.tasks.ingest.delay", delay)
    failed = IngestionJob.objects.create(
        provider="synthetic",
        symbols=["AAPL"],
        timeframe="1Day",
        start=datetime(2024, 1, 1, tzinfo=UTC),
        end=THEN,
        status=JobStatus.FAILED,
        error="vendor down",
    )
    done = IngestionJob.objects.create(
        provider="synthetic",
        symbols=["AAPL"],
        timeframe="1Day",
        start=datetime(2024, 1, 1, tzinfo=UTC),
        end=THEN,
        status=JobStatus.SUCCEEDED,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("django.db.transaction.on_commit", lambda fn, using=None, robust=False: fn())
        response = admin_client.post(
            reverse("admin:marketdata_ingestionjob_changelist"),
            {"action": "retry_jobs", "_selected_action": [failed.pk, done.pk]},
            follow=True,
        )
    text = response.content.decode()
    assert f"Queued again: #{failed.pk}" in text
    assert "only FAILED jobs can be retried" in text
    failed.refresh_from_db()
    assert failed.status == JobStatus.QUEUED and queued == [failed.pk]


def test_admin_quality_action_stores_reports(admin_client: Client) -> None:
    services.ingestion_job_run(
        job_id=services.ingestion_job_create(
            provider="synthetic",
            symbols=["SPY"],
            timeframe=Timeframe.DAY_1,
            start=datetime(2024, 6, 1, tzinfo=UTC),
            end=THEN,
        ).pk,
        provider=SyntheticProvider(clock=ManualClock(THEN)),
    )
    spy = Instrument.objects.get(symbol="SPY")
    response = admin_client.post(
        reverse("admin:marketdata_instrument_changelist"),
        {"action": "check_quality", "_selected_action": [spy.pk]},
        follow=True,
    )
    assert (
        "Quality checked: SPY WARNING" in response.content.decode()
    )  # stale: the data ends in 2024
    assert DataQualityReport.objects.get(instrument=spy).is_stale

"""Celery tasks of the market data app: thin callers of the services."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from marketdata import services


@shared_task(name="marketdata.ingest", acks_late=True, ignore_result=True)
def ingest(job_id: int) -> None:
    """Run or resume one ingestion job (a redelivered task resumes where the last one stopped)."""
    services.ingestion_job_run(job_id=job_id)


@shared_task(name="marketdata.daily_update", ignore_result=True)
def daily_update() -> None:
    """After the close: bring every active instrument up to date (skips non-session days),
    then check the updated series and store a quality report per instrument."""
    job = services.daily_update_plan(now=timezone.now())
    if job is not None:
        job = services.ingestion_job_run(job_id=job.pk)
        services.data_quality_run(symbols=job.symbols)

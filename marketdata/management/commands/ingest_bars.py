"""``manage.py ingest_bars``: fetch bars from a provider into the database (resumable job)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from marketdata import services
from marketdata.domain import Timeframe
from marketdata.models import IngestionJob, JobStatus
from marketdata.providers import PROVIDERS
from quant.errors import ApplicationError


def _moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise CommandError(f"not an ISO date or datetime: {value!r}") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Ingest bars for some symbols from a provider (idempotent; --resume JOB continues a failed job)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--provider", default=None, help=f"one of {', '.join(PROVIDERS)} (default: settings)"
        )
        parser.add_argument("--symbols", default="", help="comma-separated, e.g. AAPL,MSFT")
        parser.add_argument("--timeframe", default="1Day", help="1Min, 5Min, 15Min, 1Hour or 1Day")
        parser.add_argument(
            "--start", default=None, help="ISO date/datetime (default: one year ago)"
        )
        parser.add_argument("--end", default=None, help="ISO date/datetime (default: now)")
        parser.add_argument(
            "--resume", type=int, default=None, metavar="JOB", help="retry a failed job"
        )
        parser.add_argument(
            "--async", dest="run_async", action="store_true", help="queue it for a worker"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            job = self._job(options)
        except ApplicationError as error:
            raise CommandError(error.message) from error
        if options["run_async"]:
            services.ingestion_job_submit(job=job)  # no transaction here: queued at once
            job.refresh_from_db()
            if job.status == "failed":
                raise CommandError(f"job #{job.pk} failed: {job.error}")
            self.stdout.write(f"Queued ingestion job #{job.pk}.")
            return
        job = services.ingestion_job_run(job_id=job.pk)
        line = (
            f"job #{job.pk} {job.status}: {job.rows_written} bars written, {job.rows_unchanged} unchanged, "
            f"{job.chunks_done}/{job.chunks_total} chunks"
        )
        if job.status != JobStatus.SUCCEEDED:
            raise CommandError(f"{line}. {job.error} (resume with --resume {job.pk})")
        self.stdout.write(self.style.SUCCESS(line))

    def _job(self, options: dict[str, Any]) -> IngestionJob:
        if options["resume"] is not None:
            job = IngestionJob.objects.filter(pk=options["resume"]).first()
            if job is None:
                raise CommandError(f"no ingestion job #{options['resume']}")
            return services.ingestion_job_retry(job=job)
        if not options["symbols"]:
            raise CommandError("--symbols is required (comma-separated, e.g. AAPL,MSFT)")
        timeframe = Timeframe.parse(options["timeframe"])
        end = _moment(options["end"]) if options["end"] else timezone.now()
        start = _moment(options["start"]) if options["start"] else end - timedelta(days=365)
        return services.ingestion_job_create(
            provider=options["provider"] or settings.MARKETDATA_PROVIDER,
            symbols=options["symbols"].split(","),
            timeframe=timeframe,
            start=start,
            end=end,
        )

"""Every kind of long job the platform runs, for the reaper and the health check: each app
owns its kind (what queued and running mean, what a re-queue and a failure write); this shell
only lists them (``common.jobs`` has the reaper itself)."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.utils import timezone

from backtests.services import BACKTEST_JOBS
from backtests.walkforward_celery import WALK_FORWARD_JOBS
from common.jobs import JobKind, ReapAction, jobs_reap, jobs_stuck
from marketdata.services import INGESTION_JOBS
from monitoring.health import ComponentStatus
from research.training import TRAINING_JOBS

JOB_KINDS: tuple[JobKind, ...] = (BACKTEST_JOBS, WALK_FORWARD_JOBS, INGESTION_JOBS, TRAINING_JOBS)


def jobs_reap_all(now: datetime | None = None) -> list[ReapAction]:
    """One pass of the reaper over every kind of job."""
    return jobs_reap(JOB_KINDS, now)


def check_jobs(now: datetime | None = None) -> ComponentStatus:
    """Unhealthy while a running job has had no heartbeat for ``JOB_STALE_AFTER_SECONDS``
    (the reaper re-queues or fails it within ``JOB_REAP_EVERY_SECONDS``; a job stuck longer
    means the beat or the reaper is not running)."""
    now = now or timezone.now()
    stuck = jobs_stuck(JOB_KINDS, now)
    if not stuck:
        return ComponentStatus("jobs", True, "no running job without a heartbeat")
    named = ", ".join(
        f"{kind} {pk} (no heartbeat for {int((now - beat).total_seconds())} s)"
        for kind, pk, beat in stuck[:5]
    )
    more = f" and {len(stuck) - 5} more" if len(stuck) > 5 else ""
    return ComponentStatus(
        "jobs",
        False,
        f"{len(stuck)} stuck job(s): {named}{more}; limit {settings.JOB_STALE_AFTER_SECONDS} s",
    )

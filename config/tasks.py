"""Celery tasks of the shell: the reaper of jobs whose worker died (beat-driven)."""

from __future__ import annotations

from celery import shared_task

from config.jobs import jobs_reap_all


@shared_task(name="jobs.reap", ignore_result=True)
def reap() -> int:
    """Re-queue, revive or fail every job without a live worker; how many were acted on."""
    return len(jobs_reap_all())

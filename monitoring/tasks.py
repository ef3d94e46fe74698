"""Periodic monitoring tasks."""

from __future__ import annotations

from celery import shared_task

from monitoring.health import BEAT, heartbeat_record


@shared_task(name="monitoring.beat_heartbeat", ignore_result=True)
def beat_heartbeat() -> None:
    """Sent by Celery beat every 30 s; when it runs, beat, queue and a worker all work."""
    heartbeat_record(component=BEAT, instance="beat")

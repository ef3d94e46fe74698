"""Monitoring tasks: the beat heartbeat and alert delivery."""

from __future__ import annotations

import structlog
from celery import Task, shared_task

from monitoring.delivery import alert_deliver
from monitoring.health import BEAT, heartbeat_record

logger = structlog.get_logger(__name__)

DELIVERY_MAX_RETRIES = 6
BACKOFF_BASE_SECONDS = 10.0
BACKOFF_MAX_SECONDS = 600.0


@shared_task(name="monitoring.beat_heartbeat", ignore_result=True)
def beat_heartbeat() -> None:
    """Sent by Celery beat every 30 s; when it runs, beat, queue and a worker all work."""
    heartbeat_record(component=BEAT, instance="beat")


def retry_countdown(retries: int, retry_after: float | None = None) -> float:
    """Exponential backoff (10 s, 20 s, 40 s ... at most 10 min), never before Retry-After."""
    backoff = min(BACKOFF_BASE_SECONDS * 2**retries, BACKOFF_MAX_SECONDS)
    return max(backoff, retry_after or 0.0)


@shared_task(
    bind=True,
    name="monitoring.deliver_alert",
    ignore_result=True,
    max_retries=DELIVERY_MAX_RETRIES,
    acks_late=True,
)
def deliver_alert(self: Task, alert_id: int, severity: str) -> None:
    """Send an alert on its channels; retry only the channels that failed, with backoff."""
    outcome = alert_deliver(alert_id=alert_id, severity=severity)
    if not outcome.needs_retry:
        return
    retries = self.request.retries
    if retries >= DELIVERY_MAX_RETRIES:
        logger.error(
            "alert_delivery_abandoned",
            alert_id=alert_id,
            channels=outcome.failed,
            tries=retries + 1,
        )
        return
    raise self.retry(countdown=retry_countdown(retries, outcome.retry_after))


def deliver_alert_now(*, alert_id: int, severity: str) -> None:
    """In-process delivery for eager mode (tests, debugging): the worker's rounds, no waits.

    Celery's eager retries re-raise ``Retry`` when ``task_eager_propagates`` is on, so the
    rounds are run here instead.
    """
    for _ in range(DELIVERY_MAX_RETRIES + 1):
        if not alert_deliver(alert_id=alert_id, severity=severity).needs_retry:
            return

"""Alert delivery: one round of an alert on each of its channels, each channel independent
(the worker's ``monitoring.deliver_alert`` task retries the ones that failed)."""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog
from django.utils import timezone

from monitoring.models import Alert, AlertDelivery, AlertSeverity, DeliveryStatus
from monitoring.notifiers import AlertMessage, SendResult, notifiers_for

logger = structlog.get_logger(__name__)


def severity_rank(severity: AlertSeverity | str) -> int:
    return AlertSeverity(severity).rank


@dataclass
class DeliveryOutcome:
    """What a delivery round left to do."""

    failed: list[str] = field(default_factory=list)
    """Channels that failed and may succeed on a retry."""
    retry_after: float | None = None

    @property
    def needs_retry(self) -> bool:
        return bool(self.failed)


def _message(alert: Alert) -> AlertMessage:
    return AlertMessage(
        alert_id=alert.pk,
        severity=alert.severity,
        source=alert.source,
        message=alert.message,
        count=alert.count,
        first_seen=alert.first_seen,
        last_seen=alert.last_seen,
        details=dict(alert.details or {}),
    )


def alert_deliver(*, alert_id: int, severity: str) -> DeliveryOutcome:
    """Send the ``severity`` round of an alert on each of its channels, independently.

    A channel already sent in this round is not sent again; a recipient already reached
    (one SMS number of several) is not messaged again. Each attempt is recorded on the
    channel's ``AlertDelivery`` row.
    """
    outcome = DeliveryOutcome()
    alert = Alert.objects.filter(pk=alert_id).first()
    if alert is None:
        logger.warning("alert_delivery_skipped", alert_id=alert_id, reason="alert deleted")
        return outcome
    if severity_rank(alert.severity) > severity_rank(severity):
        # Escalated meanwhile: the higher round notifies, this one stops retrying.
        logger.info("alert_delivery_superseded", alert_id=alert_id, severity=severity)
        return outcome
    message = _message(alert)
    for notifier in notifiers_for(severity):
        delivery, _ = AlertDelivery.objects.get_or_create(
            alert=alert, channel=notifier.channel, severity=severity
        )
        if delivery.status == DeliveryStatus.SENT:
            continue
        try:
            result = notifier.send(message, done=frozenset(delivery.delivered_to))
        except Exception as error:  # a notifier bug must not stop the other channels
            logger.exception("alert_notifier_crashed", channel=notifier.channel)
            result = SendResult(error=f"{type(error).__name__}: {error}"[:500])
        delivery.attempts += 1
        delivery.delivered_to = [*delivery.delivered_to, *result.delivered]
        if result.ok:
            delivery.status = DeliveryStatus.SENT
            delivery.sent_at = timezone.now()
            delivery.last_error = ""
        else:
            delivery.status = DeliveryStatus.FAILED
            delivery.last_error = result.error + ("" if result.retryable else " (not retried)")
            if result.retryable:
                outcome.failed.append(notifier.channel)
                if result.retry_after is not None:
                    outcome.retry_after = max(outcome.retry_after or 0.0, result.retry_after)
        delivery.save(
            update_fields=[
                "attempts",
                "delivered_to",
                "status",
                "sent_at",
                "last_error",
                "updated_at",
            ]
        )
        log = logger.bind(alert_id=alert_id, channel=notifier.channel, attempt=delivery.attempts)
        if result.ok:
            log.info("alert_delivered")
        else:
            log.warning("alert_delivery_failed", error=result.error, retryable=result.retryable)
    return outcome

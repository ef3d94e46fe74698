"""Alerts: raise (grouped by key), acknowledge, deliver.

``alert_raise`` is called from the trading path (kill switch, reconciliation, orders), so it
only writes a row and hands delivery to the ``monitoring.deliver_alert`` task after the
commit; a broker that is down is logged, never raised to the caller.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

import structlog
from celery import current_app
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from common.db.locks import advisory_xact_lock
from monitoring.models import Alert, AlertDelivery, AlertSeverity, DeliveryStatus
from monitoring.notifiers import AlertMessage, SendResult, notifiers_for
from quant.errors import ValidationError

logger = structlog.get_logger(__name__)

KEY_MAX_LENGTH = 255
ENQUEUE_TIMEOUT_SECONDS = 1.0
# First half of the two-int advisory lock that serialises raises of one key on PostgreSQL.
_ADVISORY_NAMESPACE = 0x41_4C_52  # "ALR"


def severity_rank(severity: AlertSeverity | str) -> int:
    return AlertSeverity(severity).rank


def _severity(value: AlertSeverity | str) -> AlertSeverity:
    try:
        return AlertSeverity(str(value).lower())
    except ValueError:
        raise ValidationError(
            f"unknown alert severity {value!r}: use one of {', '.join(AlertSeverity.values)}",
            details={"severity": str(value)},
        ) from None


def _default_key(source: str, message: str) -> str:
    key = f"{source}: {message}"
    if len(key) <= KEY_MAX_LENGTH:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{key[: KEY_MAX_LENGTH - 17]}#{digest}"


def _lock_key(key: str) -> None:
    """Serialise raises of ``key`` until the transaction ends.

    ``select_for_update`` alone cannot stop two raises that both find no open alert from
    both inserting one; a transaction-scoped advisory lock on the key can. SQLite runs
    IMMEDIATE transactions (one writer at a time), which serialises them already.
    """
    advisory_xact_lock(_ADVISORY_NAMESPACE, key)


def alert_raise(
    *,
    severity: AlertSeverity | str,
    source: str,
    message: str,
    key: str | None = None,
    details: dict[str, Any] | None = None,
) -> Alert:
    """Record an alert and notify its channels after the commit.

    A repeat of an unacknowledged alert with the same ``key`` (default: source + message)
    last seen within ``ALERT_GROUP_WINDOW_SECONDS`` bumps that row's ``count`` and
    ``last_seen`` (message and details become the latest) and notifies nobody, unless the
    new severity is higher: then the row is escalated and notified again. Delivery problems
    never raise here.
    """
    level = _severity(severity)
    if not source or not message:
        raise ValidationError("an alert needs a source and a message")
    key = key[:KEY_MAX_LENGTH] if key else _default_key(source, message)
    now = timezone.now()
    window_start = now - timedelta(seconds=settings.ALERT_GROUP_WINDOW_SECONDS)
    with transaction.atomic():
        _lock_key(key)
        alert = (
            Alert.objects.select_for_update()
            .filter(key=key, acknowledged_at__isnull=True, last_seen__gte=window_start)
            .order_by("-last_seen")
            .first()
        )
        if alert is None:
            alert = Alert.objects.create(
                severity=level,
                source=source,
                key=key,
                message=message,
                details=details or {},
                first_seen=now,
                last_seen=now,
            )
            notify = True
        else:
            notify = level.rank > severity_rank(alert.severity)
            alert.count += 1
            alert.last_seen = max(now, alert.last_seen)
            alert.message = message
            alert.details = details or {}
            fields = ["count", "last_seen", "message", "details"]
            if notify:
                alert.severity = level
                fields.append("severity")
            alert.save(update_fields=fields)
        if notify:
            transaction.on_commit(partial(_enqueue_delivery, alert.pk, level.value))
    log = logger.bind(alert_id=alert.pk, key=key, severity=str(alert.severity), count=alert.count)
    log.info("alert_raised" if notify else "alert_grouped", source=source)
    return alert


def alert_raise_safely(
    *,
    severity: AlertSeverity | str,
    source: str,
    message: str,
    key: str | None = None,
    details: dict[str, Any] | None = None,
) -> Alert | None:
    """``alert_raise`` for a caller that an alert must never fail (the order path, the trading
    loop, the kill switch, a gate's consequence): an error is logged, never raised."""
    try:
        return alert_raise(
            severity=severity, source=source, message=message, key=key, details=details
        )
    except Exception:
        logger.exception("alert.failed", source=source, key=key, message=message)
        return None


def _enqueue_delivery(alert_id: int, severity: str) -> None:
    """Hand the alert to the worker; a broker that is down must not break or stall the caller.

    kombu's defaults retry a refused connection for about 6 s (Redis: ~19 s with publish
    retries), so connect once with a short budget and publish without retries.
    """
    from monitoring.tasks import deliver_alert, deliver_alert_now

    app = current_app
    try:
        if app.conf.task_always_eager:
            deliver_alert_now(alert_id=alert_id, severity=severity)
            return
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0, timeout=ENQUEUE_TIMEOUT_SECONDS)
            deliver_alert.apply_async(args=(alert_id, severity), connection=conn, retry=False)
    except Exception:
        logger.exception("alert_enqueue_failed", alert_id=alert_id, severity=severity)


def alert_acknowledge(*, alert: Alert, user: AbstractBaseUser) -> Alert:
    """Mark ``alert`` as seen by ``user``; the next raise of its key opens a new alert.

    Acknowledging twice keeps the first acknowledgement.
    """
    with transaction.atomic():
        locked = Alert.objects.select_for_update().get(pk=alert.pk)
        if locked.acknowledged_at is None:
            locked.acknowledged_by_id = user.pk
            locked.acknowledged_at = timezone.now()
            locked.save(update_fields=["acknowledged_by", "acknowledged_at"])
            logger.info("alert_acknowledged", alert_id=locked.pk, user_id=user.pk)
    return locked


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

"""Alerts: raise (grouped by key), acknowledge, deliver.

``alert_raise`` is called from the trading path (kill switch, reconciliation, orders), so it
only writes a row and hands delivery to the ``monitoring.deliver_alert`` task after the
commit; a broker that is down is logged, never raised to the caller.
"""

from __future__ import annotations

import hashlib
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
from monitoring.delivery import severity_rank
from monitoring.models import Alert, AlertSeverity
from monitoring.tasks import deliver_alert, deliver_alert_now
from quant.errors import ValidationError

logger = structlog.get_logger(__name__)

KEY_MAX_LENGTH = 255
ENQUEUE_TIMEOUT_SECONDS = 1.0
# First half of the two-int advisory lock that serialises raises of one key on PostgreSQL.
_ADVISORY_NAMESPACE = 0x41_4C_52  # "ALR"


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

"""Reads of the monitoring app: alerts."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet

from monitoring.models import Alert
from quant.errors import NotFoundError


def alerts_list(
    *,
    severity: str | None = None,
    acknowledged: bool | None = None,
    from_date: datetime | None = None,
    to_date: datetime | None = None,
) -> QuerySet[Alert]:
    """Alerts, most recently seen first; ``to_date`` is exclusive."""
    query = Q()
    if severity:
        query &= Q(severity=severity)
    if acknowledged is not None:
        query &= Q(acknowledged_at__isnull=not acknowledged)
    if from_date is not None:
        query &= Q(last_seen__gte=from_date)
    if to_date is not None:
        query &= Q(last_seen__lt=to_date)
    return (
        Alert.objects.filter(query).select_related("acknowledged_by").order_by("-last_seen", "-id")
    )


def alert_get(*, alert_id: int) -> Alert:
    alert = alerts_list().filter(pk=alert_id).first()
    if alert is None:
        raise NotFoundError(f"no alert with id {alert_id}", details={"id": alert_id})
    return alert

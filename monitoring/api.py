"""``/v1/alerts``: the monitoring app's router."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django.http import HttpRequest
from ninja import Field, Query, Router

from common.api import (
    COUNT_CAP,
    Data,
    Day,
    Id,
    Out,
    Page,
    PageParams,
    day_range,
    paginate,
    responses,
)
from common.auth import Role, acting_user, require_role
from monitoring import selectors
from monitoring.models import Alert
from monitoring.services import alert_acknowledge as acknowledge

alerts_router = Router(tags=["alerts"])


# --- /v1/alerts -------------------------------------------------------------------------


class AlertOut(Out):
    id: int
    severity: str
    source: str
    key: str
    message: str
    details: dict[str, Any]
    count: int
    first_seen: datetime
    last_seen: datetime
    acknowledged: bool
    acknowledged_by: str | None
    acknowledged_at: datetime | None


class AlertFilters(PageParams):
    severity: Literal["info", "warning", "critical"] | None = None
    acknowledged: bool | None = None
    from_date: Day | None = Field(
        None, description="first day included (UTC, last seen), 1900-01-01 to 2199-12-31"
    )
    to_date: Day | None = Field(
        None,
        description="last day included (UTC, last seen), 1900-01-01 to 2199-12-31, "
        "not before from_date",
    )


def alert_out(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.pk,
        "severity": alert.severity,
        "source": alert.source,
        "key": alert.key,
        "message": alert.message,
        "details": alert.details or {},
        "count": alert.count,
        "first_seen": alert.first_seen,
        "last_seen": alert.last_seen,
        "acknowledged": alert.acknowledged_at is not None,
        "acknowledged_by": (
            alert.acknowledged_by.get_username() if alert.acknowledged_by else None
        ),
        "acknowledged_at": alert.acknowledged_at,
    }


@alerts_router.get("", response=responses(200, Page(AlertOut), 422))
def alerts_list(request: HttpRequest, filters: Query[AlertFilters]) -> dict[str, Any]:
    """Alerts, most recently seen first."""
    require_role(request, Role.VIEWER)
    start, end = day_range(filters.from_date, filters.to_date)
    queryset = selectors.alerts_list(
        severity=filters.severity,
        acknowledged=filters.acknowledged,
        from_date=start,
        to_date=end,
    )
    return paginate(
        queryset, filters, lambda rows: [alert_out(a) for a in rows], count_cap=COUNT_CAP
    )


@alerts_router.patch(
    "/{alert_id}/acknowledge", response=responses(200, Data(AlertOut), 403, 404, 422)
)
def alert_acknowledge(request: HttpRequest, alert_id: Id) -> dict[str, Any]:
    """Mark the alert as seen (operator); acknowledging twice keeps the first."""

    principal = require_role(request, Role.OPERATOR)
    alert = acknowledge(alert=selectors.alert_get(alert_id=alert_id), user=acting_user(principal))
    return {"data": alert_out(selectors.alert_get(alert_id=alert.pk))}

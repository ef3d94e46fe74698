"""``/v1/health``, ``/v1/metrics`` and ``/v1/alerts``: the monitoring app's routers."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from monitoring import selectors
from monitoring.health import platform_health_full
from monitoring.metrics import metrics_summary
from monitoring.models import Alert
from quant.api import (
    COUNT_CAP,
    Data,
    Id,
    Out,
    Page,
    PageParams,
    day_range,
    decimal_text,
    paginate,
    responses,
)
from quant.api_routers import acting_user
from quant.auth import Role, require_role

health_router = Router(tags=["health"])
metrics_router = Router(tags=["metrics"])
alerts_router = Router(tags=["alerts"])


# --- /v1/health -------------------------------------------------------------------------


class ComponentOut(Out):
    name: str
    healthy: bool
    detail: str


class HealthOut(Out):
    status: Literal["ok", "degraded"]
    checked_at: datetime
    components: list[ComponentOut]


@health_router.get("", response=responses(200, Data(HealthOut)))
def health(request: HttpRequest) -> dict[str, Any]:
    """Database, job queue, workers, beat, Redis, broker connection and data freshness.
    Always 200 for a signed-in caller (``/healthz`` is the load balancer's probe)."""
    from django.utils import timezone

    require_role(request, Role.VIEWER)
    components = platform_health_full()
    return {
        "data": {
            "status": "ok" if all(c.healthy for c in components) else "degraded",
            "checked_at": timezone.now(),
            "components": [c.as_dict() for c in components],
        }
    }


# --- /v1/metrics ------------------------------------------------------------------------


class CurvePoint(Out):
    ts: datetime
    value: str


class StrategyMetricsOut(Out):
    strategy_id: int
    name: str
    fills: int
    closing_fills: int
    win_rate: str | None
    traded_notional: str
    commission: str
    realized_pnl: str


class MetricsSummaryOut(Out):
    period: str
    mode: str
    bucket: str = Field(description="resolution of the curves: 1Min, 1Hour or 1Day")
    start: datetime | None
    end: datetime
    start_equity: str | None
    end_equity: str | None
    total_pnl: str | None
    return_pct: str | None
    realized_pnl: str
    commission: str
    sharpe: str | None
    sortino: str | None
    max_drawdown_pct: str
    win_rate: str | None
    turnover: str
    traded_notional: str
    fills: int
    closing_fills: int
    equity_curve: list[CurvePoint]
    drawdown_curve: list[CurvePoint]
    strategies: list[StrategyMetricsOut]


class MetricsParams(Schema):
    period: Literal["1d", "1w", "1m", "3m", "1y", "all"] = "1m"
    mode: Literal["paper", "live"] = "paper"


def metrics_out(summary: dict[str, Any]) -> dict[str, Any]:
    money = (
        "start_equity",
        "end_equity",
        "total_pnl",
        "return_pct",
        "realized_pnl",
        "commission",
        "sharpe",
        "sortino",
        "max_drawdown_pct",
        "win_rate",
        "turnover",
        "traded_notional",
    )
    out = {**summary, **{k: decimal_text(summary[k]) for k in money}}
    out["equity_curve"] = [{"ts": t, "value": decimal_text(v)} for t, v in summary["equity_curve"]]
    out["drawdown_curve"] = [
        {"ts": t, "value": decimal_text(v)} for t, v in summary["drawdown_curve"]
    ]
    out["strategies"] = [
        {
            "strategy_id": s.strategy_id,
            "name": s.name,
            "fills": s.fills,
            "closing_fills": s.closing_fills,
            "win_rate": decimal_text(s.win_rate),
            "traded_notional": decimal_text(s.traded_notional),
            "commission": decimal_text(s.commission),
            "realized_pnl": decimal_text(s.realized_pnl),
        }
        for s in summary["strategies"]
    ]
    return out


@metrics_router.get("/summary", response=responses(200, Data(MetricsSummaryOut), 422))
def summary(request: HttpRequest, params: Query[MetricsParams]) -> dict[str, Any]:
    """P&L, Sharpe, Sortino, drawdown, win rate and turnover of paper or live trading over
    the period, across strategies (and per strategy), with the equity and drawdown curves."""
    require_role(request, Role.VIEWER)
    return {"data": metrics_out(metrics_summary(period=params.period, mode=params.mode))}


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
    from_date: date | None = Field(None, description="first day included (UTC, last seen)")
    to_date: date | None = Field(None, description="last day included (UTC, last seen)")


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
    from monitoring.services import alert_acknowledge as acknowledge

    principal = require_role(request, Role.OPERATOR)
    alert = acknowledge(alert=selectors.alert_get(alert_id=alert_id), user=acting_user(principal))
    return {"data": alert_out(selectors.alert_get(alert_id=alert.pk))}

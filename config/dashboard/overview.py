"""The dashboard's overview (``/``) and health (``/health``) pages: kill switch, books, equity,
positions, alerts and orders; every component's health. They read across apps."""

from __future__ import annotations

from typing import Any

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from common.charts import drawdown_figure, equity_figure
from common.dashboard import CRITICAL_MS, NORMAL_MS, Fragment, dashboard_view, render_page
from config.health import platform_health_full
from marketdata.selectors import instruments_coverage
from monitoring.models import Alert, AlertSeverity
from risk.selectors import admin_code_is_set, killswitch_status
from trading import pages as trading_pages
from trading.models import ReconciliationRun, SafeMode, StrategyRuntime
from trading.pages import manual_order_choices

ALERTS_SHOWN = 50


def kill_switch_banner() -> dict[str, Any]:
    states = killswitch_status()
    active = [s for s in states if s.active]
    return {
        "kill_switch": states[0],  # the global one
        "kill_switches_active": active,
        "admin_code_set": admin_code_is_set(),
    }


def alerts_active() -> dict[str, Any]:
    open_alerts = Alert.objects.filter(acknowledged_at__isnull=True)
    counts: dict[str, int] = dict(
        open_alerts.values_list("severity").annotate(n=Count("id")).values_list("severity", "n")
    )
    rank: dict[str, int] = {"critical": 0, "warning": 1, "info": 2}
    alerts = sorted(
        open_alerts.order_by("-last_seen")[:ALERTS_SHOWN], key=lambda a: rank.get(a.severity, 3)
    )
    return {
        "alerts": alerts,
        "alert_counts": {s: counts.get(s, 0) for s in AlertSeverity.values},
        "alerts_total": sum(counts.values()),
    }


def books() -> dict[str, Any]:
    return {"books": [trading_pages.book_summary(mode=m) for m in trading_pages.modes_in_use()]}


def equity_charts() -> dict[str, Any]:
    charts = []
    for mode in trading_pages.modes_in_use():
        curve = trading_pages.equity_summary(mode=mode)["equity_curve"]
        if len(curve) < 2:
            continue
        values = [float(e) for _, e in curve]  # chart coordinates; the tables show the Decimals
        naive = [ts.replace(tzinfo=None) for ts, _ in curve]
        charts.append(
            {
                "id": f"equity-{mode}",
                "script_id": f"figure-equity-{mode}",
                "figure": equity_figure(naive, values, title=f"Account equity ({mode})"),
            }
        )
        charts.append(
            {
                "id": f"drawdown-{mode}",
                "script_id": f"figure-drawdown-{mode}",
                "figure": drawdown_figure(naive, values),
            }
        )
    return {"equity_charts": charts}


def positions_open() -> dict[str, Any]:
    return {"position_rows": trading_pages.open_positions()}


def orders_recent() -> dict[str, Any]:
    return {"orders": trading_pages.orders_recent(limit=10)}


def health_status() -> dict[str, Any]:
    now = timezone.now()
    coverage = instruments_coverage(now=now)
    return {
        "components": platform_health_full(coverage),
        "checked_at": now,
        "safe_modes": list(SafeMode.objects.order_by("mode")),
        "reconciliations": list(ReconciliationRun.objects.order_by("-started_at")[:10]),
        "runtimes": list(
            StrategyRuntime.objects.select_related("strategy").order_by("strategy__name", "mode")
        ),
        "coverage_total": len(coverage),
        "coverage_stale": [c for c in coverage if c.bar_count and c.freshness.is_stale],
        "coverage_empty": [c for c in coverage if not c.bar_count],
    }


OVERVIEW = {
    "killswitch": Fragment(
        "monitoring/_killswitch_banner.html",
        lambda r: kill_switch_banner(),
        CRITICAL_MS,
        ("killswitch",),
    ),
    "books": Fragment(
        "monitoring/_books.html", lambda r: books(), CRITICAL_MS, ("positions", "orders")
    ),
    "equity": Fragment(
        "monitoring/_equity.html", lambda r: equity_charts(), NORMAL_MS, ("positions",)
    ),
    "positions": Fragment(
        "trading/_positions_table.html",
        lambda r: positions_open(),
        CRITICAL_MS,
        ("positions",),
    ),
    "alerts": Fragment(
        "monitoring/_alerts.html", lambda r: alerts_active(), CRITICAL_MS, ("alerts",)
    ),
    "orders": Fragment(
        "trading/_orders_table.html", lambda r: orders_recent(), CRITICAL_MS, ("orders",)
    ),
}


@require_GET
@dashboard_view
def overview(request: HttpRequest) -> HttpResponse:
    """Kill-switch banner, equity and P&L, drawdown, open positions, active alerts."""
    return render_page(request, "monitoring/overview.html", OVERVIEW, manual_order_choices)


@require_GET
@dashboard_view
def health(request: HttpRequest) -> HttpResponse:
    fragments = {
        "health": Fragment(
            "monitoring/_health.html",
            lambda r: health_status(),
            NORMAL_MS,
            ("health", "killswitch"),
        )
    }
    return render_page(request, "monitoring/health.html", fragments)

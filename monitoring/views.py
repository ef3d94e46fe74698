"""Operational endpoints (/healthz) and the dashboard's overview and health pages."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from monitoring import pages
from monitoring.health import platform_health
from quant.dashboard import CRITICAL_MS, NORMAL_MS, Fragment, dashboard_view, render_page


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when every component is up, 503 naming the ones that are not."""
    components = platform_health()
    healthy = all(c.healthy for c in components)
    return JsonResponse(
        {
            "status": "ok" if healthy else "unavailable",
            "components": {c.name: c.as_dict() for c in components},
        },
        status=200 if healthy else 503,
    )


OVERVIEW = {
    "killswitch": Fragment(
        "monitoring/_killswitch_banner.html",
        lambda r: pages.kill_switch_banner(),
        CRITICAL_MS,
        ("killswitch",),
    ),
    "books": Fragment(
        "monitoring/_books.html", lambda r: pages.books(), CRITICAL_MS, ("positions", "orders")
    ),
    "equity": Fragment(
        "monitoring/_equity.html", lambda r: pages.equity_charts(), NORMAL_MS, ("positions",)
    ),
    "positions": Fragment(
        "trading/_positions_table.html",
        lambda r: pages.positions_open(),
        CRITICAL_MS,
        ("positions",),
    ),
    "alerts": Fragment(
        "monitoring/_alerts.html", lambda r: pages.alerts_active(), CRITICAL_MS, ("alerts",)
    ),
    "orders": Fragment(
        "trading/_orders_table.html", lambda r: pages.orders_recent(), CRITICAL_MS, ("orders",)
    ),
}


@require_GET
@dashboard_view
def overview(request: HttpRequest) -> HttpResponse:
    """Kill-switch banner, equity and P&L, drawdown, open positions, active alerts."""
    return render_page(request, "monitoring/overview.html", OVERVIEW, pages.manual_order_choices)


@require_GET
@dashboard_view
def health(request: HttpRequest) -> HttpResponse:
    fragments = {
        "health": Fragment(
            "monitoring/_health.html", lambda r: pages.health(), NORMAL_MS, ("health", "killswitch")
        )
    }
    return render_page(request, "monitoring/health.html", fragments)

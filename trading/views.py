"""Dashboard page of the trading app: positions across strategies and the latest orders."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from common.dashboard import CRITICAL_MS, Fragment, dashboard_view, render_page
from trading import pages

FRAGMENTS = {
    "positions": Fragment(
        "trading/_positions_table.html",
        lambda r: {"position_rows": pages.open_positions()},
        CRITICAL_MS,
        ("positions",),
    ),
    "orders": Fragment(
        "trading/_orders_table.html",
        lambda r: {"orders": pages.orders_recent(limit=50)},
        CRITICAL_MS,
        ("orders",),
    ),
}


@require_GET
@dashboard_view
def positions(request: HttpRequest) -> HttpResponse:
    return render_page(request, "trading/positions.html", FRAGMENTS, pages.manual_order_choices)

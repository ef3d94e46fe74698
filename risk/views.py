"""Dashboard page of the risk app: limits and their pending changes, approvals, channels."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from common.dashboard import NORMAL_MS, Fragment, dashboard_view, render_page
from risk import pages

FRAGMENTS = {
    "limits": Fragment("risk/_limits.html", lambda r: pages.limits(), NORMAL_MS, ("limits",)),
    "pending": Fragment(
        "risk/_pending.html", lambda r: pages.pending(), NORMAL_MS, ("limits", "approvals")
    ),
}


@require_GET
@dashboard_view
def settings_page(request: HttpRequest) -> HttpResponse:
    return render_page(request, "risk/settings.html", FRAGMENTS, pages.channels)

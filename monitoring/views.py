"""Operational endpoint ``/healthz``: the load balancer's probe (no sign-in)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from monitoring.health import platform_health


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when every component is up, 503 naming the ones that are not.

    Anyone may ask, so it says only which component is up: no detail (a detail may name a
    host, a broker URL, a worker's host name or a database error). The detail is on the signed-in
    ``/v1/health`` and the health page."""
    components = platform_health()
    healthy = all(c.healthy for c in components)
    return JsonResponse(
        {
            "status": "ok" if healthy else "unavailable",
            "components": {c.name: {"name": c.name, "healthy": c.healthy} for c in components},
        },
        status=200 if healthy else 503,
    )

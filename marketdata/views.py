"""Dashboard pages of the market data app."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from marketdata.models import IngestionJob
from marketdata.selectors import instruments_coverage


def landing(request: HttpRequest) -> HttpResponse:
    """Instruments with their bar counts and data freshness, and the latest ingestion jobs."""
    now = timezone.now()
    return render(
        request,
        "marketdata/landing.html",
        {
            "coverage": instruments_coverage(now=now),
            "jobs": IngestionJob.objects.order_by("-created_at")[:10],
            "provider": settings.MARKETDATA_PROVIDER,
            "fallback": settings.MARKETDATA_FALLBACK_PROVIDER,
            "exchange": settings.MARKETDATA_EXCHANGE,
            "now": now,
        },
    )

"""Dashboard pages of the market data app (``/marketdata``, url name ``landing``)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from backtests.selectors import backtest_runs_list
from marketdata.models import IngestionJob
from marketdata.selectors import instruments_coverage, quality_latest


@login_required
def landing(request: HttpRequest) -> HttpResponse:
    """Instruments with bar counts, freshness and latest quality status; the latest ingestion
    jobs and backtest runs."""
    now = timezone.now()
    quality = quality_latest()
    rows = [(c, quality.get((c.instrument.pk, c.timeframe))) for c in instruments_coverage(now=now)]
    return render(
        request,
        "marketdata/landing.html",
        {
            "rows": rows,
            "jobs": IngestionJob.objects.order_by("-created_at")[:10],
            "runs": backtest_runs_list()[:10],
            "provider": settings.MARKETDATA_PROVIDER,
            "fallback": settings.MARKETDATA_FALLBACK_PROVIDER,
            "exchange": settings.MARKETDATA_EXCHANGE,
            "now": now,
        },
    )

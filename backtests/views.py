"""Report files of a run, served to signed-in staff (they hold strategy details)."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, Http404, HttpRequest

from backtests.models import BacktestRun, WalkForwardRun

CONTENT_TYPES = {"html": "text/html; charset=utf-8", "json": "application/json"}


@staff_member_required
def run_report(request: HttpRequest, run_id: int, kind: str) -> FileResponse:
    run = BacktestRun.objects.filter(pk=run_id).first()
    field = (run.report_html if kind == "html" else run.report_json) if run else None
    if run is None or field is None or not field or kind not in CONTENT_TYPES:
        raise Http404("no such report")
    response = FileResponse(field.open("rb"), content_type=CONTENT_TYPES[kind])
    if kind == "json":
        response["Content-Disposition"] = f'attachment; filename="backtest-{run.pk}.json"'
    return response


@staff_member_required
def walk_forward_report(request: HttpRequest, run_id: int, kind: str) -> FileResponse:
    run = WalkForwardRun.objects.filter(pk=run_id).first()
    field = (run.report_html if kind == "html" else run.report_json) if run else None
    if run is None or field is None or not field or kind not in CONTENT_TYPES:
        raise Http404("no such report")
    response = FileResponse(field.open("rb"), content_type=CONTENT_TYPES[kind])
    if kind == "json":
        response["Content-Disposition"] = f'attachment; filename="walk-forward-{run.pk}.json"'
    return response

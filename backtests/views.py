"""Dashboard pages of the runs (list, detail) and the report files of a run, served to
signed-in staff (they hold strategy details)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404

from backtests import pages
from backtests.models import BacktestRun, JobRun, WalkForwardRun
from common.dashboard import CRITICAL_MS, NORMAL_MS, Fragment, dashboard_view, render_page

CONTENT_TYPES = {"html": "text/html; charset=utf-8", "json": "application/json"}


def _report_file(model: type[JobRun], run_id: int, kind: str, prefix: str) -> FileResponse:
    run = model._default_manager.filter(pk=run_id).first()
    field = getattr(run, f"report_{kind}", None) if kind in CONTENT_TYPES else None
    if run is None or not field:
        raise Http404("no such report")
    response = FileResponse(field.open("rb"), content_type=CONTENT_TYPES[kind])
    if kind == "json":
        response["Content-Disposition"] = f'attachment; filename="{prefix}-{run.pk}.json"'
    return response


@staff_member_required
def run_report(request: HttpRequest, run_id: int, kind: str) -> FileResponse:
    return _report_file(BacktestRun, run_id, kind, "backtest")


@staff_member_required
def walk_forward_report(request: HttpRequest, run_id: int, kind: str) -> FileResponse:
    return _report_file(WalkForwardRun, run_id, kind, "walk-forward")


# --- dashboard pages ----------------------------------------------------------------------


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _history_page(
    request: HttpRequest,
    template: str,
    fragment: str,
    table: str,
    rows: Callable[..., Any],
    **context: Any,
) -> HttpResponse:
    """A page of runs: the history (filtered by strategy and status, refreshed) and the form
    that starts one (operators)."""
    strategy_id, status = _int(request.GET.get("strategy")), request.GET.get("status") or ""
    fragments = {
        fragment: Fragment(
            table,
            lambda r: rows(strategy_id=strategy_id, status=status),
            NORMAL_MS,
            ("runs",),
        )
    }
    context.update(pages.run_form_choices(), strategy_id=strategy_id, status=status)
    return render_page(request, template, fragments, context)


@dashboard_view
def runs(request: HttpRequest) -> HttpResponse:
    """Backtest runs with filters, and the form that starts one (operators)."""
    return _history_page(
        request, "backtests/runs.html", "runs", "backtests/_runs_table.html", pages.runs_filtered
    )


@dashboard_view
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    """One run: status and progress, metrics, charts (equity, drawdown, trades on price)."""
    run = get_object_or_404(
        BacktestRun.objects.select_related("strategy", "strategy_version"), pk=run_id
    )
    fragments = {
        "status": Fragment(
            "backtests/_run_status.html", lambda r: {"run": run}, CRITICAL_MS, ("runs",)
        ),
    }
    return render_page(
        request,
        "backtests/run_detail.html",
        fragments,
        lambda: {**pages.run_summary(run), "charts": pages.run_charts(run)},
    )


@dashboard_view
def walk_forward_runs(request: HttpRequest) -> HttpResponse:
    """Walk-forward runs with filters, and the form that starts one (operators)."""
    return _history_page(
        request,
        "backtests/walk_forward.html",
        "wf_runs",
        "backtests/_walk_forward_table.html",
        pages.walk_forward_filtered,
        objectives=pages.OBJECTIVES,
    )


@dashboard_view
def walk_forward_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    """One walk-forward run: progress, windows and best parameters, the stitched out-of-sample
    result with its overfitting statistics."""
    run = get_object_or_404(
        WalkForwardRun.objects.select_related("strategy", "strategy_version"), pk=run_id
    )
    fragments = {
        "status": Fragment(
            "backtests/_walk_forward_status.html",
            lambda r: {"run": WalkForwardRun.objects.get(pk=run_id)},
            CRITICAL_MS,
            ("runs",),
        ),
    }
    return render_page(
        request,
        "backtests/walk_forward_detail.html",
        fragments,
        lambda: {**pages.walk_forward_summary(run), "charts": pages.walk_forward_charts(run)},
    )

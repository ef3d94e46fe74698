"""The dashboard's strategy pages (``/strategies`` and ``/strategies/<id>``): each strategy
with its latest backtest and book; one strategy's performance, trading state, config editor,
versions, mode changes and approvals. They read across apps."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import yaml
from django.contrib import messages
from django.db.models import Count, OuterRef, Q, Subquery, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from backtests.models import BacktestRun, RunStatus
from backtests.pages import metric_rows, run_equity
from common.auth import Role
from common.charts import equity_figure
from common.dashboard import (
    CRITICAL_MS,
    NORMAL_MS,
    Fragment,
    dashboard_view,
    render_page,
    require_role,
)
from quant.errors import ValidationError
from quant.strategies.config import StrategyConfig, config_dump, config_parse
from research.models import ApprovalRequest, ApprovalStatus, ModeChange, Strategy, StrategyVersion
from research.services import strategy_config_update
from risk.selectors import trading_states
from trading.models import Position

ZERO = Decimal(0)
# Large JSON columns of a run that list pages never show.
HEAVY_RUN_FIELDS = ("equity_curve", "open_positions", "strategy_config", "backtest_config")


def strategies_overview() -> list[dict[str, Any]]:
    """Every strategy with its latest succeeded run and its book (open positions, realized P&L)."""
    latest = (
        BacktestRun.objects.filter(strategy=OuterRef("pk"), status=RunStatus.SUCCEEDED)
        .order_by("-finished_at", "-id")
        .values("pk")[:1]
    )
    strategies = list(
        Strategy.objects.select_related("current_version")
        .annotate(
            open_positions=Count("positions", filter=~Q(positions__quantity=0), distinct=True),
            realized_pnl=Sum("positions__realized_pnl"),
            latest_run_id=Subquery(latest),
        )
        .order_by("name")
    )
    runs = BacktestRun.objects.defer(*HEAVY_RUN_FIELDS).in_bulk(
        [s.latest_run_id for s in strategies if s.latest_run_id]
    )
    return [{"strategy": s, "latest_run": runs.get(s.latest_run_id)} for s in strategies]


def config_yaml(version: StrategyVersion | None) -> str:
    """The version's config as YAML in the canonical key order."""
    if version is None:
        return ""
    try:
        return config_dump(version.as_config())
    except ValidationError:  # the class or its params changed since: show what is stored
        return yaml.safe_dump(version.config, sort_keys=False)


def config_yaml_parse(*, strategy: Strategy, text: str) -> StrategyConfig:
    """The editor's YAML as a validated config; a ValidationError whose ``details["problems"]``
    names each bad field (as ``PATCH /v1/strategies/<id>`` answers)."""
    return config_parse(text, source=f"strategy {strategy.name}")


def strategy_page(strategy: Strategy) -> dict[str, Any]:
    """Everything the strategy page shows besides its refreshing parts."""
    runs = list(
        BacktestRun.objects.filter(strategy=strategy)
        .select_related("strategy_version")
        .defer(*HEAVY_RUN_FIELDS)
        .order_by("-created_at", "-id")[:20]
    )
    best = (
        BacktestRun.objects.filter(strategy=strategy, status=RunStatus.SUCCEEDED)
        .select_related("strategy_version")
        .order_by("-finished_at", "-id")
        .first()
    )
    chart = None
    if best is not None and best.equity_curve:
        stamps, equity = run_equity(best)
        chart = equity_figure(stamps, equity, title=f"Equity of run {best.pk} (latest backtest)")
    return {
        "strategy": strategy,
        "versions": list(strategy.versions.order_by("-number")[:20]),
        "mode_changes": list(
            ModeChange.objects.filter(strategy=strategy).select_related("changed_by")[:20]
        ),
        "approvals": list(
            ApprovalRequest.objects.filter(strategy=strategy).select_related(
                "requested_by", "decided_by", "strategy_version"
            )[:20]
        ),
        "runs": runs,
        "latest_run": best,
        "latest_metrics": metric_rows(best.metrics) if best else [],
        "performance_chart": chart,
        "config_text": config_yaml(strategy.current_version),
    }


def strategy_book(strategy: Strategy) -> dict[str, Any]:
    """The strategy's positions per mode and their realized P&L (the refreshing part)."""
    positions = list(Position.objects.filter(strategy=strategy).order_by("mode", "symbol"))
    return {
        "positions": [p for p in positions if p.quantity],
        "trading_states": trading_states(now=timezone.now(), strategy_id=strategy.pk),
        "realized_pnl": sum((p.realized_pnl for p in positions), ZERO),
        "pending_approvals": sum(
            1
            for a in ApprovalRequest.objects.filter(
                strategy=strategy, status=ApprovalStatus.PENDING
            )
        ),
    }


@dashboard_view
def strategies(request: HttpRequest) -> HttpResponse:
    fragments = {
        "strategies": Fragment(
            "research/_strategies_table.html",
            lambda r: {"rows": strategies_overview()},
            NORMAL_MS,
            ("strategies", "runs", "positions"),
        )
    }
    return render_page(request, "research/strategies.html", fragments)


@dashboard_view
@require_http_methods(["GET", "POST"])
def strategy_detail(request: HttpRequest, strategy_id: int) -> HttpResponse:
    """Performance, positions, config editor, versions, mode changes and approvals.

    The editor saves through ``PATCH /v1/strategies/<id>`` from the browser; without
    JavaScript it posts here and gets the same validation (admins only)."""
    strategy = get_object_or_404(Strategy.objects.select_related("current_version"), pk=strategy_id)
    problems: list[str] = []
    text = None
    if request.method == "POST":
        require_role(request, Role.ADMIN)
        text = request.POST.get("config_yaml", "")
        before = strategy.current_version_id
        try:
            config = config_yaml_parse(strategy=strategy, text=text)
            version = strategy_config_update(strategy=strategy, config=config)
        except ValidationError as error:
            problems = list(error.details.get("problems") or [error.message])
        else:
            changed = version.pk != before
            messages.success(
                request, f"Saved as version {version.number}." if changed else "No change."
            )
            mode = Strategy.objects.values_list("mode", flat=True).get(pk=strategy.pk)
            if mode != strategy.mode:
                messages.warning(
                    request,
                    f"The strategy left {strategy.mode} trading and is back in research mode: "
                    f"version {version.number} must pass its review and promotion again.",
                )
            return redirect("strategy-detail", strategy_id=strategy.pk)
    fragments = {
        "book": Fragment(
            "research/_strategy_book.html",
            lambda r: strategy_book(strategy),
            CRITICAL_MS,
            ("positions", "killswitch"),
        )
    }

    def context() -> dict[str, object]:
        data = strategy_page(strategy)
        if text is not None:
            data["config_text"] = text
        data["problems"] = problems
        return data

    response = render_page(request, "research/strategy_detail.html", fragments, context)
    if problems:
        response.status_code = 422
    return response

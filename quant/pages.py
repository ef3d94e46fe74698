"""Reads (and the config-editor parse) of the dashboard's strategy pages."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import yaml
from django.db.models import Count, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from backtests.models import BacktestRun, RunStatus
from backtests.pages import metric_rows, run_equity
from quant.charts import equity_figure
from quant.core.errors import ValidationError
from quant.models import ApprovalRequest, ApprovalStatus, ModeChange, Strategy, StrategyVersion
from quant.strategies.config import StrategyConfig, config_dump, config_parse
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

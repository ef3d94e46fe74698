"""Reads of the backtests app."""

from __future__ import annotations

from django.db.models import QuerySet

from backtests.models import BacktestRun, BacktestTrade, WalkForwardRun, WalkForwardWindow
from quant.errors import NotFoundError


def backtest_runs_list(
    *, strategy_id: int | None = None, status: str | None = None
) -> QuerySet[BacktestRun]:
    qs = BacktestRun.objects.select_related("strategy", "strategy_version")
    if strategy_id is not None:
        qs = qs.filter(strategy_id=strategy_id)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-id")


def backtest_run_get(*, run_id: int) -> BacktestRun:
    try:
        return BacktestRun.objects.select_related("strategy", "strategy_version").get(pk=run_id)
    except BacktestRun.DoesNotExist:
        raise NotFoundError(f"backtest run {run_id} does not exist") from None


def backtest_trades_list(*, run: BacktestRun) -> QuerySet[BacktestTrade]:
    return BacktestTrade.objects.filter(run=run).order_by("seq")


def walk_forward_runs_list(
    *, strategy_id: int | None = None, status: str | None = None
) -> QuerySet[WalkForwardRun]:
    qs = WalkForwardRun.objects.select_related("strategy", "strategy_version").defer(
        "result", "equity_curve", "backtest_config", "strategy_config"
    )
    if strategy_id is not None:
        qs = qs.filter(strategy_id=strategy_id)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-id")


def walk_forward_run_get(*, run_id: int) -> WalkForwardRun:
    run = (
        WalkForwardRun.objects.select_related("strategy", "strategy_version")
        .filter(pk=run_id)
        .first()
    )
    if run is None:
        raise NotFoundError(f"walk-forward run {run_id} does not exist")
    return run


def walk_forward_windows(*, run: WalkForwardRun) -> list[WalkForwardWindow]:
    return list(WalkForwardWindow.objects.filter(run=run).order_by("index"))

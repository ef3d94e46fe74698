"""Writes of walk-forward runs: create, submit, cancel, wait for, and store the result.

A run is validated whole when it is created (review gate, grid names and values, windows that
fit the stored bars) and its window rows are stored then, so a bad request stores nothing and
a stored run always has its windows. The data range is pinned to the first and last bar found,
so every Celery task of the run reads the same bars. The fan-out itself (start, in-sample and
out-of-sample evaluations, gather) lives in ``backtests.walkforward_celery``.

A run moves QUEUED -> RUNNING -> SUCCEEDED / FAILED / CANCELLED like a backtest run
(``models.RUN_TRANSITIONS``), each change a compare-and-swap UPDATE.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import structlog
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from backtests.models import (
    RunStatus,
    WalkForwardEvaluation,
    WalkForwardRun,
    WalkForwardWindow,
    run_transition,
)
from backtests.reports import walk_forward_report_html
from backtests.services import market_data_load
from common.idempotency import Once, created_once, request_fingerprint
from common.jobs import enqueue_on_commit
from quant.backtest import BacktestConfig, MarketData
from quant.backtest.walkforward import (
    WalkForwardConfig,
    WalkForwardResult,
    WindowPlan,
    plan_windows,
)
from quant.backtest.walkforward_plan import grid_expand
from quant.backtest.walkforward_report import generate_json
from quant.errors import ConflictError, ValidationError
from quant.strategies.config import StrategyConfig
from research.models import StrategyVersion
from research.services import strategy_require_reviewed

log = structlog.get_logger(__name__)

RESULT_KEYS = (
    "strategy",
    "walk_forward_config",
    "grid_size",
    "skipped_grid_points",
    "flagged_windows",
    "aggregated_metrics",
    "parameter_stability",
    "overfitting",
)


def grid_parse(specs: Iterable[str]) -> dict[str, list[Any]]:
    """``["fast=5,10", "slow=50,100"]`` as a grid; values read as YAML scalars (5 -> int)."""
    import yaml

    grid: dict[str, list[Any]] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip()
        if not sep or not name or not values.strip():
            raise ValidationError(f"grid {spec!r}: write name=value1,value2,...")
        if name in grid:
            raise ValidationError(f"grid {spec!r}: parameter {name!r} is given twice")
        parsed = []
        for text in values.split(","):
            if not text.strip():
                raise ValidationError(f"grid {spec!r}: an empty value")
            try:
                parsed.append(yaml.safe_load(text.strip()))
            except yaml.YAMLError:
                parsed.append(text.strip())
        grid[name] = parsed
    return grid


@dataclass(frozen=True)
class WalkForwardRequest:
    """A checked request: the config that will run, its bars, windows and grid size."""

    strategy_config: StrategyConfig
    data: MarketData
    plans: list[WindowPlan]
    grid_points: int


def walk_forward_check(
    *,
    strategy_version: StrategyVersion,
    wf_config: WalkForwardConfig,
    backtest_config: BacktestConfig,
    symbols: tuple[str, ...] | None = None,
) -> WalkForwardRequest:
    """Everything a run needs checked, storing nothing: the review gate (gate 1 of the spec:
    only a reviewed strategy may be backtested), the grid against the strategy's params, and
    windows that fit the stored bars, and what one run may queue (``WALK_FORWARD_MAX_*``).
    Raises an ApplicationError naming the problem."""
    strategy_require_reviewed(strategy_version.strategy)
    strategy_config = strategy_version.as_config()
    if symbols:
        strategy_config = strategy_config.model_copy(update={"symbols": tuple(symbols)})
    size = math.prod(len(values) for values in wf_config.parameter_grid.values())
    _within("parameter_grid", "grid points", size, settings.WALK_FORWARD_MAX_GRID_POINTS)
    expansion = grid_expand(
        wf_config.parameter_grid, strategy_config.strategy_class().Params, strategy_config.params
    )
    data = market_data_load(
        symbols=strategy_config.symbols,
        timeframe=strategy_config.timeframe,
        start=backtest_config.start_date,
        end=backtest_config.end_date,
    )
    plans = plan_windows(len(data), wf_config)
    _within("windows", "windows", len(plans), settings.WALK_FORWARD_MAX_WINDOWS)
    tasks = len(plans) * (len(expansion.points) + 1)
    _within("grid points x windows", "tasks", tasks, settings.WALK_FORWARD_MAX_TASKS)
    return WalkForwardRequest(strategy_config, data, plans, len(expansion.points))


def _within(field: str, what: str, size: int, limit: int) -> None:
    if size > limit:
        name = {"grid points": "GRID_POINTS", "windows": "WINDOWS", "tasks": "TASKS"}[what]
        raise ValidationError(
            f"{field}: this request makes {size:,} {what}; one walk-forward run may have at "
            f"most {limit:,} (WALK_FORWARD_MAX_{name}): use fewer values or longer steps",
            details={"field": field, "asked": size, "limit": limit},
        )


def walk_forward_run_create(
    *,
    strategy_version: StrategyVersion,
    wf_config: WalkForwardConfig,
    backtest_config: BacktestConfig,
    symbols: tuple[str, ...] | None = None,
    requested_by: User | None = None,
    idempotency: tuple[str, str] = ("", ""),
) -> WalkForwardRun:
    """Check (``walk_forward_check``) and store a QUEUED run with its window rows; nothing
    is stored on error."""
    checked = walk_forward_check(
        strategy_version=strategy_version,
        wf_config=wf_config,
        backtest_config=backtest_config,
        symbols=symbols,
    )
    strategy_config, data, plans = checked.strategy_config, checked.data, checked.plans
    n_points = checked.grid_points
    stamps = bar_times(data)
    pinned = BacktestConfig.from_dict(
        {
            **backtest_config.as_dict(),
            "timeframe": strategy_config.timeframe,
            "start_date": stamps[0].isoformat(),
            "end_date": stamps[-1].isoformat(),
        }
    )
    with transaction.atomic():
        run = WalkForwardRun.objects.create(
            strategy=strategy_version.strategy,
            strategy_version=strategy_version,
            strategy_config=strategy_config.as_dict(),
            backtest_config=pinned.as_dict(),
            wf_config=wf_config.as_dict(),
            symbols=list(strategy_config.symbols),
            timeframe=strategy_config.timeframe,
            tasks_total=len(plans) * (n_points + 1),
            requested_by=requested_by if getattr(requested_by, "pk", None) else None,
            idempotency_key=idempotency[0],
            idempotency_fingerprint=idempotency[1],
        )
        WalkForwardWindow.objects.bulk_create(
            [
                WalkForwardWindow(
                    run=run,
                    index=plan.index,
                    in_sample_start=stamps[plan.is_start],
                    in_sample_end=stamps[plan.is_end - 1],
                    out_of_sample_start=stamps[plan.oos_start],
                    out_of_sample_end=stamps[plan.oos_end - 1],
                )
                for plan in plans
            ]
        )
    log.info("walkforward.created", run_id=run.pk, windows=len(plans), grid_points=n_points)
    return run


def walk_forward_run_start(
    *,
    strategy_version: StrategyVersion,
    wf_config: WalkForwardConfig,
    backtest_config: BacktestConfig,
    symbols: tuple[str, ...] | None = None,
    requested_by: User | None = None,
    idempotency_key: str = "",
) -> Once[WalkForwardRun]:
    """Create and queue a run, at most once per ``idempotency_key`` (``common.idempotency``)."""
    fingerprint = request_fingerprint(
        strategy_version=strategy_version.pk,
        wf_config=wf_config.as_dict(),
        backtest_config=backtest_config.as_dict(),
        symbols=list(symbols or []),
    )

    def create() -> WalkForwardRun:
        run = walk_forward_run_create(
            strategy_version=strategy_version,
            wf_config=wf_config,
            backtest_config=backtest_config,
            symbols=symbols,
            requested_by=requested_by,
            idempotency=(idempotency_key, fingerprint),
        )
        return walk_forward_run_submit(run=run)

    with transaction.atomic():
        return created_once(WalkForwardRun, idempotency_key, fingerprint, create)


def walk_forward_run_submit(*, run: WalkForwardRun) -> WalkForwardRun:
    """Queue the run's start task (``backtests.wf_start``) once the surrounding transaction
    has committed; a broker that refuses it fails the run with the reason."""
    enqueue_on_commit(
        "backtests.wf_start",
        run.pk,
        queued=lambda task_id: WalkForwardRun.objects.filter(pk=run.pk).update(task_id=task_id),
        failed=lambda message: run_fail(run_id=run.pk, message=message),
        what="run",
    )
    return run


def walk_forward_run_cancel(*, run: WalkForwardRun) -> WalkForwardRun:
    """Cancel a queued or running run at once: its remaining tasks find it cancelled and stop."""
    cancelled = run_transition(
        run, RunStatus.CANCELLED, cancel_requested=True, finished_at=timezone.now()
    )
    if not cancelled:
        raise ConflictError(
            f"walk-forward run {run.pk} has already finished ({run.status}); nothing to cancel"
        )
    log.info("walkforward.cancelled", run_id=run.pk, done=run.tasks_done, total=run.tasks_total)
    return run


def walk_forward_run_wait(
    *,
    run: WalkForwardRun,
    timeout: float | None = None,
    poll: float = 0.5,
    on_progress: Callable[[WalkForwardRun], None] | None = None,
) -> WalkForwardRun:
    """Poll the run until it is final (or ``timeout`` seconds pass); ``on_progress`` is called
    whenever ``tasks_done`` or the status changes."""
    deadline = None if timeout is None else time.monotonic() + timeout
    seen: tuple[str, int] | None = None
    while True:
        run.refresh_from_db()
        if on_progress is not None and (run.status, run.tasks_done) != seen:
            seen = (run.status, run.tasks_done)
            on_progress(run)
        if run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED):
            return run
        if deadline is not None and time.monotonic() > deadline:
            return run
        time.sleep(poll)


def run_fail(*, run_id: int, message: str) -> bool:
    """QUEUED/RUNNING -> FAILED with a readable reason; False when the run was already final."""
    failed = run_transition(
        WalkForwardRun(pk=run_id),
        RunStatus.FAILED,
        error_message=message,
        finished_at=timezone.now(),
    )
    if failed:
        log.warning("walkforward.failed", run_id=run_id, error=message)
    return failed


def walk_forward_result_store(
    *, run_id: int, result: WalkForwardResult, workers: dict[int, list[dict[str, Any]]]
) -> bool:
    """Write the result, the window rows and the report files with RUNNING -> SUCCEEDED.

    ``workers`` holds, per window, who ran each grid point (kept in ``grid_results``).
    False (nothing written) when the run is no longer running (cancelled or failed meanwhile).
    """
    document = generate_json(result)
    html_file = ContentFile(walk_forward_report_html(result).encode())
    json_file = ContentFile(json.dumps(document, indent=1).encode())
    with transaction.atomic():
        run = WalkForwardRun.objects.select_for_update().get(pk=run_id)
        if run.status != RunStatus.RUNNING:
            log.info("walkforward.result_dropped", run_id=run_id, status=run.status)
            return False
        rows = {w.index: w for w in WalkForwardWindow.objects.filter(run_id=run_id)}
        for window in result.windows:
            row, data = rows[window.plan.index], window.as_dict()
            row.best_params = data["params"]
            row.in_sample_metrics = data["in_sample_metrics"]
            row.out_of_sample_metrics = data["out_of_sample_metrics"]
            row.in_sample_trades = data["in_sample_trades"]
            row.out_of_sample_trades = data["out_of_sample_trades"]
            row.flag = data["flag"][:200]
            who = workers.get(window.plan.index, [])
            row.grid_results = [
                {**point, **(who[n] if n < len(who) else {})}
                for n, point in enumerate(data["grid_results"])
            ]
        # the evaluations are in the windows' grid results and the reports now
        WalkForwardEvaluation.objects.filter(window__run_id=run_id).delete()
        WalkForwardWindow.objects.bulk_update(
            list(rows.values()),
            [
                "best_params",
                "in_sample_metrics",
                "out_of_sample_metrics",
                "in_sample_trades",
                "out_of_sample_trades",
                "flag",
                "grid_results",
            ],
        )
        run.report_html.save(f"run-{run_id}.html", html_file, save=False)
        run.report_json.save(f"run-{run_id}.json", json_file, save=False)
        run.result = {key: document[key] for key in RESULT_KEYS}
        run.result["aggregated_trades"] = len(document["aggregated_trades"])
        run.equity_curve = document["equity_curve"]
        run.status = RunStatus.SUCCEEDED
        run.tasks_done = run.tasks_total
        run.finished_at = timezone.now()
        run.error_message = ""
        run.save()
    log.info(
        "walkforward.done",
        run_id=run_id,
        windows=len(result.windows),
        flagged=len(result.flagged_windows),
        sharpe=document["aggregated_metrics"].get("sharpe_ratio"),
    )
    return True


def bar_times(data: MarketData) -> list[datetime]:
    """Each bar's start as an aware UTC datetime."""
    return list(pd.DatetimeIndex(data.ts, tz="UTC").to_pydatetime())

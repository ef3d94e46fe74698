"""The Celery fan-out of a walk-forward run: the worker side of each stage.

Stages, each a Celery task (``backtests.walkforward_tasks``) over one function here:

1. ``walk_forward_start``: QUEUED -> RUNNING, then one in-sample task per (grid point,
   window), windows interleaved so that concurrent workers rarely wait on the same row.
2. ``walk_forward_in_sample``: one grid point on one window's in-sample bars. The evaluation
   is stored as a ``WalkForwardEvaluation`` row under a lock on the window row, and
   ``tasks_done`` is incremented with ``F()`` in the same transaction. The task that stores a
   window's last point picks the window's best (the engine's ``choose_best``) and queues its
   out-of-sample task, or flags the window (its out-of-sample step counts as done at once).
3. ``walk_forward_out_of_sample``: the best params on the window's out-of-sample bars,
   stored the same way.
4. ``walk_forward_gather``: queued by the task whose increment makes ``tasks_done`` reach
   ``tasks_total`` (exactly one does: the increments are serialized by the run row's lock);
   it rebuilds the evaluations from their rows and calls the engine's ``aggregate``, so the
   result is the one ``WalkForwardEngine`` computes in process.

Each task writes one small row and reads no other task's evaluation (only the task finishing
a window reads that window's points), so the cost per task stays flat as the grid grows.

Why no chord: the embedded mode's filesystem broker has no result backend, and a task that
waits on other tasks deadlocks a single worker. The database is the result store, so any
broker works, and more workers (on any machine) take more tasks with no change here.

Messages carry ids only; each worker process loads the run's bars from the database once
and keeps them (``_inputs``). A task finding its run no longer RUNNING (cancelled, failed)
returns at once. A redelivered task whose evaluation is already stored stores nothing. Any
error fails the run with the window, its dates and the params named.
"""

from __future__ import annotations

import math
import os
import socket
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from backtests.models import (
    RunStatus,
    WalkForwardEvaluation,
    WalkForwardRun,
    WalkForwardWindow,
    run_transition,
    tag_non_finite,
)
from backtests.services import market_data_load
from backtests.walkforward_services import bar_times, run_fail, walk_forward_result_store
from common.jobs import JobKind, interrupted, job_beating, task_named
from quant.backtest import BacktestConfig, MarketData
from quant.backtest.walkforward import (
    Evaluation,
    Job,
    Segment,
    WalkForwardConfig,
    WindowPlan,
    aggregate,
    choose_best,
    plan_windows,
    run_job,
)
from quant.backtest.walkforward_plan import grid_expand
from quant.errors import ApplicationError, ValidationError
from quant.strategies.config import StrategyConfig, config_validate

log = structlog.get_logger(__name__)

CACHED_RUNS = 4  # bars of this many runs are kept per worker process


@dataclass(frozen=True)
class RunInputs:
    """What every task of a run needs, loaded once per worker process."""

    strategy_config: StrategyConfig
    backtest_config: BacktestConfig
    wf_config: WalkForwardConfig
    data: MarketData
    stamps: list[datetime]
    plans: list[WindowPlan]
    points: list[dict[str, Any]]
    skipped: list[dict[str, Any]]

    def job(self, window: int, params: dict[str, Any], segment: Segment) -> Job:
        return Job(self.strategy_config, self.backtest_config, self.plans[window], params, segment)


_cache: OrderedDict[tuple[int, datetime], RunInputs] = OrderedDict()


def _inputs(run: WalkForwardRun) -> RunInputs:
    key = (run.pk, run.created_at)
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    run = WalkForwardRun.objects.get(pk=run.pk)  # the configs (tasks load the run's id only)
    strategy_config = config_validate(run.strategy_config, source=f"walk-forward run {run.pk}")
    backtest_config = BacktestConfig.from_dict(run.backtest_config)
    wf_config = WalkForwardConfig.from_dict(run.wf_config)
    data = market_data_load(
        symbols=strategy_config.symbols,
        timeframe=strategy_config.timeframe,
        start=backtest_config.start_date,
        end=backtest_config.end_date,
    )
    expansion = grid_expand(
        wf_config.parameter_grid, strategy_config.strategy_class().Params, strategy_config.params
    )
    inputs = RunInputs(
        strategy_config=strategy_config,
        backtest_config=backtest_config,
        wf_config=wf_config,
        data=data,
        stamps=bar_times(data),
        plans=plan_windows(len(data), wf_config),
        points=expansion.points,
        skipped=[point for point, _ in expansion.skipped],
    )
    _cache[key] = inputs
    while len(_cache) > CACHED_RUNS:
        _cache.popitem(last=False)
    return inputs


def walk_forward_start(*, run_id: int) -> None:
    """QUEUED -> RUNNING, then queue every in-sample task."""
    run = WalkForwardRun(pk=run_id)
    now = timezone.now()
    if not run_transition(run, RunStatus.RUNNING, started_at=now, heartbeat_at=now, attempts=0):
        log.info("walkforward.skip_start", run_id=run_id, status=run.status)
        return
    try:
        inputs = _inputs(run)
        windows = len(inputs.plans)
        if run.tasks_total != windows * (len(inputs.points) + 1):
            raise ValidationError("the stored bars or the grid changed since the run was created")
    except Exception as error:
        if interrupted(error):  # nothing sent: the reaper sends every task (revive)
            log.warning("walkforward.start_interrupted", run_id=run_id, error=str(error))
            return
        run_fail(run_id=run_id, message=f"starting the run: {_describe(error)}")
        log.exception("walkforward.start_failed", run_id=run_id)
        return
    log.info("walkforward.start", run_id=run_id, tasks=run.tasks_total)
    for point in range(len(inputs.points)):
        for window in range(windows):
            if not _send("backtests.wf_evaluate", run_id, window, point):
                return


def walk_forward_in_sample(*, run_id: int, window: int, point: int, worker: str = "") -> None:
    """Evaluate one grid point in sample and store it (see the module docstring)."""
    run = _running(run_id)
    if run is None:
        return
    params: dict[str, Any] | None = None
    if WalkForwardEvaluation.objects.filter(
        window__run_id=run_id, window__index=window, segment=Segment.IN_SAMPLE, point=point
    ).exists():
        return  # sent again by the reaper, and this copy comes second
    try:
        inputs = _inputs(run)
        params = inputs.points[point]
        with job_beating(WalkForwardRun, run_id):
            evaluation = run_job(inputs.job(window, params, Segment.IN_SAMPLE), inputs.data)
        with transaction.atomic():
            row = _locked_window(run_id, window, inputs)
            stored = row.evaluations.filter(segment=Segment.IN_SAMPLE)
            counts = stored.aggregate(all=Count("pk"), this=Count("pk", filter=Q(point=point)))
            if counts["this"]:
                return  # a redelivered task got here first
            _store(row, evaluation, point, worker)
            finished_window = counts["all"] + 1 == len(inputs.points)
            best: dict[str, Any] | None = None
            if finished_window:
                evaluations = [
                    Evaluation.from_dict(e)
                    for e in stored.order_by("point").values_list("evaluation", flat=True)
                ]
                best, flag = choose_best(
                    evaluations,
                    inputs.wf_config.objective,
                    inputs.wf_config.min_trades_required,
                )
                chosen = next(
                    (e for e in evaluations if best is not None and e.params == best), None
                )
                row.best_params, row.flag = best, flag[:200]
                row.in_sample_metrics = _finite(chosen.metrics) if chosen else None
                row.in_sample_trades = chosen.trades if chosen else None
                row.save(
                    update_fields=["best_params", "flag", "in_sample_metrics", "in_sample_trades"]
                )
            # a flagged window has no out-of-sample task: its step counts as done now
            if not _count(run_id, 2 if finished_window and best is None else 1):
                return
        if finished_window and best is not None:
            _send("backtests.wf_out_of_sample", run_id, window, best)
    except Exception as error:
        _task_failed(run_id, window, params, Segment.IN_SAMPLE, error)


def walk_forward_out_of_sample(
    *, run_id: int, window: int, params: dict[str, Any], worker: str = ""
) -> None:
    """Run a window's best params out of sample and store the evaluation."""
    run = _running(run_id)
    if run is None:
        return
    try:
        inputs = _inputs(run)
        with job_beating(WalkForwardRun, run_id):
            evaluation = run_job(inputs.job(window, params, Segment.OUT_OF_SAMPLE), inputs.data)
        with transaction.atomic():
            row = _locked_window(run_id, window, inputs)
            if row.evaluations.filter(segment=Segment.OUT_OF_SAMPLE).exists():
                return  # a redelivered task got here first
            _store(row, evaluation, None, worker)
            row.out_of_sample_metrics = _finite(evaluation.metrics)
            row.out_of_sample_trades = evaluation.trades
            row.save(update_fields=["out_of_sample_metrics", "out_of_sample_trades"])
            _count(run_id, 1)
    except Exception as error:
        _task_failed(run_id, window, params, Segment.OUT_OF_SAMPLE, error)


def walk_forward_gather(*, run_id: int) -> None:
    """Gather the stored evaluations into one result and store it with the reports."""
    run = _running(run_id)
    if run is None:
        return
    with job_beating(WalkForwardRun, run_id):
        _gather(run)


def _gather(run: WalkForwardRun) -> None:
    run_id = run.pk
    try:
        inputs = _inputs(run)
        in_sample: list[Evaluation] = []
        out_of_sample: list[Evaluation] = []
        workers: dict[int, list[dict[str, Any]]] = {}
        rows = (
            WalkForwardEvaluation.objects.filter(window__run_id=run_id)
            .order_by("window__index", "point")
            .values_list("window__index", "segment", "evaluation", "worker", "pid")
        )
        for index, segment, data, worker, pid in rows.iterator():
            if segment == Segment.IN_SAMPLE:
                in_sample.append(Evaluation.from_dict(data))
                workers.setdefault(index, []).append({"worker": worker, "pid": pid})
            else:
                out_of_sample.append(Evaluation.from_dict(data))
        result = aggregate(
            strategy_config=inputs.strategy_config,
            wf_config=inputs.wf_config,
            backtest_config=inputs.backtest_config,
            data=inputs.data,
            plans=inputs.plans,
            points=inputs.points,
            in_sample=in_sample,
            out_of_sample=out_of_sample,
            skipped=inputs.skipped,
        )
        walk_forward_result_store(run_id=run_id, result=result, workers=workers)
    except Exception as error:
        if interrupted(error):  # the reaper sends the gather again (revive)
            log.warning("walkforward.gather_interrupted", run_id=run_id, error=str(error))
            return
        run_fail(run_id=run_id, message=f"gathering the results: {_describe(error)}")
        log.exception("walkforward.gather_failed", run_id=run_id)


def walk_forward_revive(run: WalkForwardRun) -> int:
    """Send again every task of a running run whose result is missing: the in-sample points
    not stored, the out-of-sample step of each window whose best params are chosen, or the
    gather when every task is done. Returns how many tasks were sent. Each task stores
    nothing when its result is already there, so a copy still in the queue is harmless."""
    run_id = run.pk
    done, total = WalkForwardRun.objects.values_list("tasks_done", "tasks_total").get(pk=run_id)
    if done >= total:
        return int(_send("backtests.wf_gather", run_id))
    windows = list(
        WalkForwardWindow.objects.filter(run_id=run_id)
        .order_by("index")
        .values_list("index", "best_params")
    )
    points = total // len(windows) - 1 if windows else 0
    rows = WalkForwardEvaluation.objects.filter(window__run_id=run_id)
    stored = set(
        rows.filter(segment=Segment.IN_SAMPLE).values_list("window__index", "point").iterator()
    )
    out_done = set(
        rows.filter(segment=Segment.OUT_OF_SAMPLE).values_list("window__index", flat=True)
    )
    sent = 0
    for point in range(points):
        for index, _ in windows:
            if (index, point) not in stored:
                if not _send("backtests.wf_evaluate", run_id, index, point):
                    return sent
                sent += 1
    for index, best in windows:
        if best is not None and index not in out_done:
            if not _send("backtests.wf_out_of_sample", run_id, index, best):
                return sent
            sent += 1
    log.warning("walkforward.revived", run_id=run_id, sent=sent, done=done, total=total)
    return sent


WALK_FORWARD_JOBS = JobKind(
    name="walk-forward",
    model=WalkForwardRun,
    task="backtests.wf_start",
    queued=Q(status=RunStatus.QUEUED),
    running=Q(status=RunStatus.RUNNING),
    requeue=dict,
    fail=lambda message, now: {
        "status": RunStatus.FAILED,
        "error_message": f"its tasks stopped: {message}",
        "finished_at": now,
    },
    revive=walk_forward_revive,
)


def warm_up() -> None:
    """Run a small walk-forward on synthetic bars in this process and render its reports.

    A new worker's first gather otherwise also pays for loading plotly's figure classes and
    plotly.js, SciPy's distributions and the engine's first NumPy calls: about 0.3 s on the
    benchmark's 500-backtest run (0.72-0.81 s cold against 0.46 s warm). Workers call this when
    they start (``worker_ready``), before they take tasks. Nothing is stored.
    """
    from backtests.reports import walk_forward_report_html
    from quant.backtest.sample import random_walk_bars
    from quant.backtest.walkforward import LocalExecutor, WalkForwardEngine
    from quant.backtest.walkforward_report import generate_json

    strategy_config = config_validate(
        {
            "name": "warm-up",
            "class": "sma_crossover",
            "symbols": ["WARM"],
            "timeframe": "1Day",
            "params": {"fast": 5, "slow": 20},
        },
        source="worker warm-up",
    )
    data = MarketData.from_frames({"WARM": random_walk_bars(260, seed=3, volatility=0.02)})
    wf_config = WalkForwardConfig(
        in_sample_days=120,
        out_of_sample_days=40,
        step_days=40,
        parameter_grid={"fast": [5, 10], "slow": [20, 30]},
    )
    result = WalkForwardEngine().run(
        strategy_config, data, wf_config, BacktestConfig(), executor=LocalExecutor()
    )
    generate_json(result)
    walk_forward_report_html(result)


# --- internals --------------------------------------------------------------------------


def _running(run_id: int) -> WalkForwardRun | None:
    """The run's id, status and creation time when it is RUNNING (the configs and a finished
    run's result are not read on every task)."""
    run = WalkForwardRun.objects.filter(pk=run_id).only("status", "created_at").first()
    if run is None or run.status != RunStatus.RUNNING:
        return None
    return run


def _store(row: WalkForwardWindow, evaluation: Evaluation, point: int | None, worker: str) -> None:
    WalkForwardEvaluation.objects.create(
        window=row,
        segment=evaluation.segment.value,
        point=point,
        evaluation=tag_non_finite(evaluation.as_dict()),
        worker=worker or socket.gethostname(),
        pid=os.getpid(),
    )


def _locked_window(run_id: int, window: int, inputs: RunInputs) -> WalkForwardWindow:
    """The window row, locked; fails when the bars no longer match the stored window."""
    row = WalkForwardWindow.objects.select_for_update().get(run_id=run_id, index=window)
    plan = inputs.plans[window]
    if (row.in_sample_start, row.out_of_sample_end) != (
        inputs.stamps[plan.is_start],
        inputs.stamps[plan.oos_end - 1],
    ):
        raise ValidationError("the stored bars changed since the run was created")
    return row


def _count(run_id: int, done: int) -> bool:
    """Add ``done`` to ``tasks_done`` (inside the caller's transaction); queue the gather when
    the total is reached. False (and the caller's writes rolled back) when the run stopped."""
    if not WalkForwardRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
        tasks_done=F("tasks_done") + done, heartbeat_at=timezone.now(), attempts=0
    ):
        transaction.set_rollback(True)
        return False
    counts = WalkForwardRun.objects.filter(pk=run_id).values_list("tasks_done", "tasks_total")
    finished, total = counts.get()
    if finished == total:
        transaction.on_commit(lambda: _send("backtests.wf_gather", run_id))
    return True


def _send(task: str, run_id: int, *args: Any) -> bool:
    """Queue stage ``task`` (by name: its module calls this one) for the run."""
    try:
        task_named(task).delay(run_id, *args)
    except Exception as error:
        if interrupted(error):  # broker down: the reaper sends what is missing (revive)
            log.warning("walkforward.send_interrupted", run_id=run_id, task=task, error=str(error))
            return False
        run_fail(run_id=run_id, message=f"could not queue a task: {_describe(error)}")
        return False
    return True


def _task_failed(
    run_id: int,
    window: int,
    params: dict[str, Any] | None,
    segment: Segment,
    error: Exception,
) -> None:
    if interrupted(error):  # nothing stored: the reaper sends this task again (revive)
        log.warning("walkforward.task_interrupted", run_id=run_id, window=window, error=str(error))
        return
    where = f"window {window}"
    row = WalkForwardWindow.objects.filter(run_id=run_id, index=window).first()
    if row is not None:
        start, end = (
            (row.in_sample_start, row.in_sample_end)
            if segment is Segment.IN_SAMPLE
            else (row.out_of_sample_start, row.out_of_sample_end)
        )
        where += f" ({segment.value.replace('_', '-')} {start:%Y-%m-%d}..{end:%Y-%m-%d})"
    if params is not None:
        where += ", params " + ", ".join(f"{k}={v!r}" for k, v in params.items())
    if run_fail(run_id=run_id, message=f"{where}: {_describe(error)}") and not isinstance(
        error, ApplicationError
    ):
        log.exception("walkforward.task_crashed", run_id=run_id, window=window)


def _describe(error: Exception) -> str:
    if isinstance(error, ApplicationError):
        return error.message
    return f"internal error: {type(error).__name__}: {error}"


def _finite(metrics: dict[str, float | None]) -> dict[str, float | None]:
    return {k: v if v is None or math.isfinite(v) else None for k, v in metrics.items()}

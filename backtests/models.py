"""Backtest runs: what ran (strategy version, config snapshot, data range), how it went
(state machine, progress) and what came out (metrics, trades, equity, report files)."""

from __future__ import annotations

import json
import math
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


# The run state machine: the statuses each status may be reached from. Only a worker's claim
# makes a run RUNNING (a message delivered twice runs it once); a run whose worker died goes
# back to QUEUED through the reaper (``common.jobs.jobs_reap``). Results are written only
# with the final change.
RUN_TRANSITIONS: dict[str, tuple[str, ...]] = {
    RunStatus.QUEUED: (RunStatus.RUNNING,),  # the reaper: its worker died (common.jobs)
    RunStatus.RUNNING: (RunStatus.QUEUED,),
    RunStatus.SUCCEEDED: (RunStatus.RUNNING,),
    RunStatus.FAILED: (RunStatus.QUEUED, RunStatus.RUNNING),
    RunStatus.CANCELLED: (RunStatus.QUEUED, RunStatus.RUNNING),
}
FINAL_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class JobRun(models.Model):
    """What backtest and walk-forward runs share: what ran (the strategy config of a version
    and the backtest config), the run state machine and its timestamps."""

    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    # exactly what ran: the strategy config of the version and the backtest config
    strategy_config = models.JSONField()
    backtest_config = models.JSONField()
    symbols = models.JSONField(default=list)
    timeframe = models.CharField(max_length=8)
    error_message = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    heartbeat_at = models.DateTimeField(
        default=timezone.now, help_text="Last sign of life: queued, claimed, or its worker's beat"
    )
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Workers that took it (walk-forward: revivals without progress)"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    idempotency_key = models.CharField(
        max_length=120, blank=True, default="", help_text="The client's Idempotency-Key (per user)"
    )
    idempotency_fingerprint = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


def run_transition(
    run: JobRun, to: str, *, allowed: tuple[str, ...] | None = None, **fields: Any
) -> bool:
    """Compare-and-swap the run's status along ``RUN_TRANSITIONS`` (or from ``allowed``),
    writing ``fields`` in the same UPDATE; the instance is read again. False when the run was
    elsewhere (another worker, a cancel, a redelivered task got there first)."""
    sources = allowed if allowed is not None else RUN_TRANSITIONS[to]
    changed = (
        type(run)._default_manager.filter(pk=run.pk, status__in=sources).update(status=to, **fields)
    )
    run.refresh_from_db()
    return changed == 1


class EngineModeChoice(models.TextChoices):
    EVENT = "event", "Event-driven"
    VECTORIZED = "vectorized", "Vectorized"


def report_path(run: BacktestRun, filename: str) -> str:
    return f"backtests/run-{run.pk}/{filename}"


class BacktestRun(JobRun):
    strategy = models.ForeignKey(
        "quant.Strategy", on_delete=models.PROTECT, related_name="backtest_runs"
    )
    strategy_version = models.ForeignKey(
        "quant.StrategyVersion", on_delete=models.PROTECT, related_name="backtest_runs"
    )
    progress = models.FloatField(default=0.0)
    engine_mode = models.CharField(
        max_length=10, choices=EngineModeChoice.choices, default=EngineModeChoice.EVENT
    )
    start = models.DateTimeField(null=True, blank=True, help_text="Requested first bar (UTC)")
    end = models.DateTimeField(null=True, blank=True, help_text="Requested last bar (UTC)")
    data_start = models.DateTimeField(null=True, blank=True, help_text="First bar used")
    data_end = models.DateTimeField(null=True, blank=True, help_text="Last bar used")
    bar_count = models.PositiveIntegerField(null=True, blank=True)
    metrics = models.JSONField(null=True, blank=True)
    final_equity = models.DecimalField(max_digits=20, decimal_places=2, null=True, blank=True)
    total_trades = models.PositiveIntegerField(null=True, blank=True)
    equity_curve = models.JSONField(
        null=True, blank=True, help_text="Equity points (at most 5000; the JSON report has all)"
    )
    open_positions = models.JSONField(null=True, blank=True)
    report_json = models.FileField(upload_to=report_path, blank=True, max_length=255)
    report_html = models.FileField(upload_to=report_path, blank=True, max_length=255)

    class Meta(JobRun.Meta):
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=RunStatus.values), name="backtestrun_status_valid"
            ),
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="backtestrun_unique_idempotency_key",
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=1), name="backtestrun_progress_0_1"
            ),
            models.CheckConstraint(
                condition=Q(start__isnull=True)
                | Q(end__isnull=True)
                | Q(start__lte=models.F("end")),
                name="backtestrun_start_before_end",
            ),
        ]
        indexes = [
            models.Index(
                fields=["status"],
                name="backtestrun_active",
                condition=Q(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]),
            ),
            models.Index(fields=["strategy", "-created_at"], name="backtestrun_by_strategy"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.strategy_config.get('name', '?')}, {self.status})"


class BacktestTrade(models.Model):
    """A closed round trip of a run (open positions at the end live in ``open_positions``)."""

    run = models.ForeignKey(BacktestRun, on_delete=models.CASCADE, related_name="trades")
    seq = models.PositiveIntegerField()
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=5, choices=[("long", "Long"), ("short", "Short")])
    quantity = models.DecimalField(max_digits=20, decimal_places=6)
    entry_time = models.DateTimeField()
    entry_price = models.DecimalField(max_digits=20, decimal_places=6)
    exit_time = models.DateTimeField()
    exit_price = models.DecimalField(max_digits=20, decimal_places=6)
    commission = models.DecimalField(max_digits=16, decimal_places=2)
    pnl = models.DecimalField(max_digits=20, decimal_places=2)
    bars_held = models.PositiveIntegerField()

    class Meta:
        ordering = ["run", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["run", "seq"], name="backtesttrade_unique_seq"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="backtesttrade_quantity_gt_0"),
            models.CheckConstraint(
                condition=Q(exit_time__gte=models.F("entry_time")),
                name="backtesttrade_exit_after_entry",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.symbol} {self.entry_time:%Y-%m-%d}"


class EvaluationSegment(models.TextChoices):
    IN_SAMPLE = "in_sample", "In sample"
    OUT_OF_SAMPLE = "out_of_sample", "Out of sample"


class WindowType(models.TextChoices):
    ROLLING = "rolling", "Rolling"
    ANCHORED = "anchored", "Anchored"


class WalkForwardRun(JobRun):
    """A walk-forward optimization: windows by grid points fanned out as Celery tasks."""

    strategy = models.ForeignKey(
        "quant.Strategy", on_delete=models.PROTECT, related_name="walk_forward_runs"
    )
    strategy_version = models.ForeignKey(
        "quant.StrategyVersion", on_delete=models.PROTECT, related_name="walk_forward_runs"
    )
    wf_config = models.JSONField(help_text="Window sizes, type, grid, objective, min trades")
    tasks_total = models.PositiveIntegerField(default=0)
    tasks_done = models.PositiveIntegerField(default=0)
    result = models.JSONField(
        null=True, blank=True, help_text="Aggregated metrics, stability, overfitting statistics"
    )
    equity_curve = models.JSONField(null=True, blank=True, help_text="Stitched out-of-sample")
    report_html = models.FileField(upload_to="walkforward/", blank=True)
    report_json = models.FileField(upload_to="walkforward/", blank=True)

    class Meta(JobRun.Meta):
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=RunStatus.values), name="walkforward_status_valid"
            ),
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="walkforward_unique_idempotency_key",
            ),
            models.CheckConstraint(
                condition=Q(tasks_done__lte=models.F("tasks_total")),
                name="walkforward_progress_bounded",
            ),
        ]

    def __str__(self) -> str:
        return f"walk-forward {self.pk} of {self.strategy_version} [{self.status}]"

    @property
    def progress(self) -> float:
        return self.tasks_done / self.tasks_total if self.tasks_total else 0.0


class WalkForwardWindow(models.Model):
    run = models.ForeignKey(WalkForwardRun, on_delete=models.CASCADE, related_name="windows")
    index = models.PositiveIntegerField()
    in_sample_start = models.DateTimeField()
    in_sample_end = models.DateTimeField()
    out_of_sample_start = models.DateTimeField()
    out_of_sample_end = models.DateTimeField()
    best_params = models.JSONField(null=True, blank=True)
    in_sample_metrics = models.JSONField(null=True, blank=True)
    out_of_sample_metrics = models.JSONField(null=True, blank=True)
    in_sample_trades = models.PositiveIntegerField(null=True, blank=True)
    out_of_sample_trades = models.PositiveIntegerField(null=True, blank=True)
    grid_results = models.JSONField(
        default=list, blank=True, help_text="Objective per grid point in sample"
    )
    flag = models.CharField(
        max_length=200, blank=True, help_text="Why the window is not valid, e.g. too few trades"
    )

    class Meta:
        ordering = ["run", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="walkforwardwindow_unique"),
        ]

    def __str__(self) -> str:
        return f"window {self.index} of run {self.run_id}"


# Evaluations round-trip through a JSON column exactly: floats keep their value (JSON numbers
# are exact decimal text), and the non-finite ones PostgreSQL's jsonb refuses are tagged.
NON_FINITE_TAG = "$float"


def tag_non_finite(value: Any) -> Any:
    """``value`` with each non-finite float replaced by ``{"$float": "inf"}`` (or nan, -inf)."""
    if isinstance(value, float) and not math.isfinite(value):
        return {NON_FINITE_TAG: repr(value)}
    if isinstance(value, dict):
        return {k: tag_non_finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [tag_non_finite(v) for v in value]
    return value


def _untag(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and NON_FINITE_TAG in obj:
        return float(obj[NON_FINITE_TAG])
    return obj


class TaggedFloatDecoder(json.JSONDecoder):
    """Reads the tags of :func:`tag_non_finite` back into floats while parsing (an object hook:
    the long lists of returns are parsed in C, never walked again in Python)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("object_hook", _untag)
        super().__init__(**kwargs)


class WalkForwardEvaluation(models.Model):
    """One task's evaluation while its run is in flight: a grid point in sample (``point`` is
    its index in the grid), or the window's chosen params out of sample (``point`` empty).

    A row of its own per task, so a worker writes one small row and reads nothing big; the
    unique constraints make a redelivered task's second write impossible. The gather step
    reads them all and deletes them once the run's result is stored.
    """

    window = models.ForeignKey(
        WalkForwardWindow, on_delete=models.CASCADE, related_name="evaluations"
    )
    segment = models.CharField(max_length=16, choices=EvaluationSegment.choices)
    point = models.PositiveIntegerField(null=True, blank=True)
    evaluation = models.JSONField(
        decoder=TaggedFloatDecoder, help_text="Evaluation.as_dict(), non-finite floats tagged"
    )
    worker = models.CharField(max_length=200, blank=True)
    pid = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["window", "segment", "point"]
        constraints = [
            models.UniqueConstraint(
                fields=["window", "point"],
                condition=Q(segment=EvaluationSegment.IN_SAMPLE),
                name="wfevaluation_unique_point",
            ),
            models.UniqueConstraint(
                fields=["window"],
                condition=Q(segment=EvaluationSegment.OUT_OF_SAMPLE),
                name="wfevaluation_unique_oos",
            ),
            models.CheckConstraint(
                condition=(
                    Q(segment=EvaluationSegment.IN_SAMPLE, point__isnull=False)
                    | Q(segment=EvaluationSegment.OUT_OF_SAMPLE, point__isnull=True)
                ),
                name="wfevaluation_point_iff_in_sample",
            ),
        ]

    def __str__(self) -> str:
        where = f"point {self.point}" if self.point is not None else "out of sample"
        return f"{where} of {self.window}"

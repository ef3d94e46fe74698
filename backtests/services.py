"""Writes of the backtests app: create, run, cancel and re-run backtests.

A run moves QUEUED -> RUNNING -> SUCCEEDED / FAILED / CANCELLED (``models.RUN_TRANSITIONS``, ``run_transition``);
every change is a compare-and-swap UPDATE. Results (trades, metrics, equity, report files) are
written together with the final change, so a failed or cancelled run leaves nothing half-done.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from backtests.models import BacktestRun, BacktestTrade, RunStatus, run_transition
from backtests.reports import run_report_html
from common.idempotency import Once, created_once, request_fingerprint
from common.jobs import JobKind, enqueue_on_commit, interrupted, job_beating, stale_before
from marketdata.domain import Timeframe
from marketdata.selectors import bars_frame
from quant.backtest import (
    BacktestCancelled,
    BacktestConfig,
    BacktestEngine,
    BacktestResult,
    EngineMode,
    MarketData,
)
from quant.backtest.report import ReportGenerator
from quant.clock import Clock, SystemClock
from quant.errors import ApplicationError, ConflictError, ValidationError
from quant.strategies.config import StrategyConfig, config_validate
from research.models import StrategyVersion
from research.services import strategy_require_reviewed

log = structlog.get_logger(__name__)

PROGRESS_EVERY_S = 0.5  # how often a running backtest writes progress and reads the cancel flag


@dataclass(frozen=True)
class RunOutcome:
    run: BacktestRun
    result: BacktestResult | None


def backtest_execute(
    *,
    strategy_config: StrategyConfig,
    data: MarketData,
    config: BacktestConfig,
    mode: EngineMode | str = EngineMode.EVENT,
    progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> BacktestResult:
    """Build the strategy from its config and run it: the one path every caller takes."""
    return BacktestEngine().run(
        strategy_config.build(),
        data,
        config,
        mode=mode,
        strategy_config=strategy_config.as_dict(),
        progress=progress,
        should_cancel=should_cancel,
    )


def market_data_load(
    *, symbols: tuple[str, ...], timeframe: str, start: datetime | None, end: datetime | None
) -> MarketData:
    """Stored bars of the symbols as engine input; names a symbol with no stored bars."""
    frames = {
        symbol: bars_frame(symbol=symbol, timeframe=Timeframe(timeframe), start=start, end=end)
        for symbol in symbols
    }
    return MarketData.from_frames(frames, symbols=symbols, start=start, end=end)


def backtest_run_create(
    *,
    strategy_version: StrategyVersion,
    config: BacktestConfig,
    mode: EngineMode | str = EngineMode.EVENT,
    symbols: tuple[str, ...] | None = None,
    requested_by: User | None = None,
    idempotency: tuple[str, str] = ("", ""),
) -> BacktestRun:
    """Validate and store a QUEUED run of one strategy version (nothing is stored on error).

    Gate 1 of the spec: only a reviewed strategy may be backtested."""
    strategy_require_reviewed(strategy_version.strategy)
    strategy_config = strategy_version.as_config()
    if symbols:
        strategy_config = strategy_config.model_copy(update={"symbols": tuple(symbols)})
    mode = EngineMode(mode)
    if mode is EngineMode.VECTORIZED and not strategy_config.strategy_class().supports_vectorized:
        raise ValidationError(
            f"strategy class {strategy_config.class_name!r} has no vectorized form: use event mode"
        )
    config = _with_timeframe(config, strategy_config.timeframe)
    with transaction.atomic():  # a savepoint: a lost race on the idempotency key
        return BacktestRun.objects.create(
            strategy=strategy_version.strategy,
            strategy_version=strategy_version,
            engine_mode=mode.value,
            strategy_config=strategy_config.as_dict(),
            backtest_config=config.as_dict(),
            symbols=list(strategy_config.symbols),
            timeframe=strategy_config.timeframe,
            start=config.start_date,
            end=config.end_date,
            requested_by=requested_by if getattr(requested_by, "pk", None) else None,
            idempotency_key=idempotency[0],
            idempotency_fingerprint=idempotency[1],
        )


def backtest_run_start(
    *,
    strategy_version: StrategyVersion,
    config: BacktestConfig,
    mode: EngineMode | str = EngineMode.EVENT,
    symbols: tuple[str, ...] | None = None,
    requested_by: User | None = None,
    idempotency_key: str = "",
) -> Once[BacktestRun]:
    """Create and queue a run, at most once per ``idempotency_key`` (``common.idempotency``:
    a retry gets the first request's run, queued once; the same key with a different request
    is refused)."""
    fingerprint = request_fingerprint(
        strategy_version=strategy_version.pk,
        config=config.as_dict(),
        mode=EngineMode(mode).value,
        symbols=list(symbols or []),
    )

    def create() -> BacktestRun:
        run = backtest_run_create(
            strategy_version=strategy_version,
            config=config,
            mode=mode,
            symbols=symbols,
            requested_by=requested_by,
            idempotency=(idempotency_key, fingerprint),
        )
        return backtest_run_submit(run=run)

    with transaction.atomic():
        return created_once(BacktestRun, idempotency_key, fingerprint, create)


def backtest_run_submit(*, run: BacktestRun) -> BacktestRun:
    """Queue the run (task ``backtests.run``) once the surrounding transaction has committed;
    a broker that refuses it fails the run with the reason."""
    enqueue_on_commit(
        "backtests.run",
        run.pk,
        queued=lambda task_id: BacktestRun.objects.filter(pk=run.pk).update(
            task_id=task_id, heartbeat_at=timezone.now()
        ),
        failed=lambda message: run_transition(run, RunStatus.FAILED, error_message=message),
        what="run",
    )
    return run


def backtest_run_execute(*, run_id: int, clock: Clock | None = None) -> RunOutcome:
    """Run a queued run to its end state. Only a QUEUED run is taken (a message delivered
    twice runs it once); a running or finished one is left as it is. While it runs, this
    process stamps its heartbeat (``common.jobs``)."""
    clock = clock or SystemClock()
    run = BacktestRun.objects.select_related("strategy_version").get(pk=run_id)
    if not run_transition(
        run,
        RunStatus.RUNNING,
        started_at=clock.now(),
        progress=0.0,
        heartbeat_at=timezone.now(),
        attempts=F("attempts") + 1,
        cancel_requested=False,
    ):
        log.info("backtest.skip", run_id=run.pk, status=run.status)
        return RunOutcome(run, None)
    log.info("backtest.start", run_id=run.pk, strategy=run.strategy_config.get("name"))
    with job_beating(BacktestRun, run.pk):
        return _execute(run, clock)


def _execute(run: BacktestRun, clock: Clock) -> RunOutcome:
    try:
        # validated again: the class must still exist and still accept the stored params
        strategy_config = config_validate(run.strategy_config, source=f"run {run.pk}")
        config = BacktestConfig.from_dict(run.backtest_config)
        data = market_data_load(
            symbols=strategy_config.symbols,
            timeframe=strategy_config.timeframe,
            start=run.start,
            end=run.end,
        )
        watcher = _RunWatcher(run.pk)
        result = backtest_execute(
            strategy_config=strategy_config,
            data=data,
            config=config,
            mode=run.engine_mode,
            progress=watcher.progress,
            should_cancel=watcher.cancelled,
        )
    except BacktestCancelled:
        run_transition(run, RunStatus.CANCELLED, finished_at=clock.now())
        log.info("backtest.cancelled", run_id=run.pk)
        return RunOutcome(run, None)
    except ApplicationError as error:
        run_transition(run, RunStatus.FAILED, error_message=error.message, finished_at=clock.now())
        log.warning("backtest.failed", run_id=run.pk, error=error.message)
        return RunOutcome(run, None)
    except Exception as error:
        if interrupted(error):  # the reaper runs it again (common.jobs)
            log.warning("backtest.interrupted", run_id=run.pk, error=str(error))
            return RunOutcome(run, None)
        message = f"internal error: {type(error).__name__}: {error}"
        run_transition(run, RunStatus.FAILED, error_message=message, finished_at=clock.now())
        log.exception("backtest.crashed", run_id=run.pk)
        raise
    _store_result(run, result, finished_at=clock.now())
    return RunOutcome(run, result)


def backtest_run_cancel(*, run: BacktestRun) -> BacktestRun:
    """Cancel a queued run, or a running one whose worker is gone (no heartbeat for
    ``JOB_STALE_AFTER_SECONDS``), at once; ask a running one to stop at its next progress
    check (its worker reads the flag at least every ``PROGRESS_EVERY_S``)."""
    now = timezone.now()
    if run_transition(run, RunStatus.CANCELLED, allowed=(RunStatus.QUEUED,), finished_at=now):
        return run
    dead = BacktestRun.objects.filter(
        pk=run.pk, status=RunStatus.RUNNING, heartbeat_at__lt=stale_before(now)
    )
    if dead.update(status=RunStatus.CANCELLED, cancel_requested=True, finished_at=now):
        run.refresh_from_db()
        log.info("backtest.cancelled_dead", run_id=run.pk)
        return run
    if BacktestRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        cancel_requested=True
    ):
        run.refresh_from_db()
        return run
    run.refresh_from_db()
    raise ConflictError(f"run {run.pk} has already finished ({run.status}); nothing to cancel")


def backtest_run_rerun(*, run: BacktestRun, requested_by: User | None = None) -> BacktestRun:
    """A new queued run with the same strategy version, config and data range."""
    new = BacktestRun.objects.create(
        strategy=run.strategy,
        strategy_version=run.strategy_version,
        engine_mode=run.engine_mode,
        strategy_config=run.strategy_config,
        backtest_config=run.backtest_config,
        symbols=run.symbols,
        timeframe=run.timeframe,
        start=run.start,
        end=run.end,
        requested_by=requested_by if getattr(requested_by, "pk", None) else None,
    )
    return backtest_run_submit(run=new)


BACKTEST_JOBS = JobKind(
    name="backtest",
    model=BacktestRun,
    task="backtests.run",
    queued=Q(status=RunStatus.QUEUED),
    running=Q(status=RunStatus.RUNNING),
    requeue=lambda: {"status": RunStatus.QUEUED, "progress": 0.0},
    fail=lambda message, now: {
        "status": RunStatus.FAILED,
        "error_message": message,
        "finished_at": now,
    },
    cancel_requested=Q(cancel_requested=True),
    cancelled=lambda now: {"status": RunStatus.CANCELLED, "finished_at": now},
)


# --- internals --------------------------------------------------------------------------


def _with_timeframe(config: BacktestConfig, timeframe: str) -> BacktestConfig:
    values = {**config.as_dict(), "timeframe": timeframe}
    return BacktestConfig.from_dict(values)


class _RunWatcher:
    """Writes progress and reads the cancel flag, at most every ``PROGRESS_EVERY_S`` seconds
    (the engine asks ``cancelled`` and reports ``progress`` at each of its checkpoints)."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.last = 0.0
        self.flag = False

    def progress(self, done: float) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY_S and done < 1.0:
            return
        self.last = now
        BacktestRun.objects.filter(pk=self.run_id, status=RunStatus.RUNNING).update(
            progress=min(max(done, 0.0), 1.0)
        )
        self.flag = BacktestRun.objects.filter(pk=self.run_id, cancel_requested=True).exists()

    def cancelled(self) -> bool:
        return self.flag


def _store_result(run: BacktestRun, result: BacktestResult, *, finished_at: datetime) -> None:
    payload = ReportGenerator().generate_json(result)
    payload["run_id"] = run.pk
    json_file = ContentFile(json.dumps(payload, indent=1).encode(), name="report.json")
    html_file = ContentFile(run_report_html(result).encode(), name="report.html")
    metrics = result.metrics.as_dict()
    with transaction.atomic():
        locked = BacktestRun.objects.select_for_update().get(pk=run.pk)
        if locked.status != RunStatus.RUNNING:
            log.info("backtest.result_dropped", run_id=run.pk, status=locked.status)
            run.refresh_from_db()
            return
        locked.report_json.save("report.json", json_file, save=False)
        locked.report_html.save("report.html", html_file, save=False)
        BacktestTrade.objects.filter(run=locked).delete()  # a restarted run starts clean
        BacktestTrade.objects.bulk_create(
            [
                BacktestTrade(
                    run=locked,
                    seq=seq,
                    symbol=t.symbol,
                    side=t.side,
                    quantity=t.quantity,
                    entry_time=t.entry_time,
                    entry_price=t.entry_price,
                    exit_time=t.exit_time,
                    exit_price=t.exit_price,
                    commission=t.commission,
                    pnl=t.pnl,
                    bars_held=t.bars_held,
                )
                for seq, t in enumerate(result.trades, start=1)
            ],
            batch_size=2000,
        )
        BacktestRun.objects.filter(pk=run.pk).update(
            status=RunStatus.SUCCEEDED,
            progress=1.0,
            finished_at=finished_at,
            metrics=metrics,
            final_equity=result.final_equity,
            total_trades=len(result.trades),
            equity_curve=payload["equity_curve"],
            open_positions=[p.as_dict() for p in result.open_positions],
            data_start=result.start_time,
            data_end=result.end_time,
            bar_count=len(result.equity_curve),
            report_json=locked.report_json.name,
            report_html=locked.report_html.name,
            error_message="",
        )
    run.refresh_from_db()
    log.info(
        "backtest.done",
        run_id=run.pk,
        trades=run.total_trades,
        final_equity=str(run.final_equity),
    )

"""Celery tasks of walk-forward runs: thin callers of ``backtests.walkforward_celery``.

Each takes ids (and a window's chosen params), never bars; see that module for the stages.
"""

from __future__ import annotations

from typing import Any

import structlog
from celery import Task, shared_task
from celery.signals import worker_ready

from backtests import walkforward_celery as fanout

log = structlog.get_logger(__name__)


@worker_ready.connect
def warm_up_worker(**_: Any) -> None:
    """Load the report and statistics code before the first task (see ``fanout.warm_up``)."""
    try:
        fanout.warm_up()
    except Exception:  # a slower first gather, never a worker that does not start
        log.exception("walkforward.warm_up_failed")


@shared_task(name="backtests.wf_start", acks_late=True, ignore_result=True)
def wf_start(run_id: int) -> None:
    """Start a queued run: queue one in-sample task per (grid point, window)."""
    fanout.walk_forward_start(run_id=run_id)


@shared_task(name="backtests.wf_evaluate", bind=True, acks_late=True, ignore_result=True)
def wf_evaluate(self: Task, run_id: int, window: int, point: int) -> None:
    """Evaluate one grid point on one window's in-sample bars."""
    fanout.walk_forward_in_sample(
        run_id=run_id, window=window, point=point, worker=self.request.hostname or ""
    )


@shared_task(name="backtests.wf_out_of_sample", bind=True, acks_late=True, ignore_result=True)
def wf_out_of_sample(self: Task, run_id: int, window: int, params: dict[str, Any]) -> None:
    """Run one window's best params on its out-of-sample bars."""
    fanout.walk_forward_out_of_sample(
        run_id=run_id, window=window, params=params, worker=self.request.hostname or ""
    )


@shared_task(name="backtests.wf_gather", acks_late=True, ignore_result=True)
def wf_gather(run_id: int) -> None:
    """Gather a run's evaluations into its result and reports."""
    fanout.walk_forward_gather(run_id=run_id)

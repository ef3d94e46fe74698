"""Celery tasks of the backtests app: thin callers of the services."""

from __future__ import annotations

from celery import shared_task

from backtests import services


@shared_task(name="backtests.run", acks_late=True, ignore_result=True)
def run_backtest(run_id: int) -> None:
    """Run one queued backtest (a redelivered task restarts it; a finished run is left alone)."""
    services.backtest_run_execute(run_id=run_id)


# Walk-forward tasks live in their own module; importing them here registers them with the
# worker (Celery autodiscovers ``<app>.tasks`` only).
from backtests.walkforward_tasks import (  # noqa: E402
    wf_evaluate,
    wf_gather,
    wf_out_of_sample,
    wf_start,
)

__all__ = ["run_backtest", "wf_evaluate", "wf_gather", "wf_out_of_sample", "wf_start"]

"""Real Celery workers killed with ``kill -9`` in the middle of a job, Redis as the broker.

The dead worker's message stays unacknowledged in Redis for the broker's visibility timeout
(an hour), so nothing but the reaper brings the job back: a new worker with an embedded beat
(``celery worker -B``, whose ``jobs.reap`` runs every second here) must finish it. To kill a
worker at a known point, the test holds a PostgreSQL lock that the job's next read waits on:
the worker is provably inside the job (claimed, heartbeat ticking) when it dies.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest
from django.db import connections
from pytest_django.fixtures import Settings as SettingsWrapper

from backtests import services, walkforward_services
from backtests.models import BacktestRun, BacktestTrade, RunStatus, WalkForwardRun
from backtests.tasks import run_backtest
from backtests.walkforward_tasks import wf_start
from config.celery import app
from config.jobs import check_jobs
from quant.backtest import BacktestConfig
from quant.backtest.walkforward import WalkForwardConfig
from research.models import StrategyVersion
from tests.support.celery_workers import CeleryWorkers
from tests.support.fixtures import current_database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres, pytest.mark.redis]

FAST = {
    "JOB_HEARTBEAT_SECONDS": "0.5",
    "JOB_STALE_AFTER_SECONDS": "3",
    "JOB_REAP_EVERY_SECONDS": "1",
}


@pytest.fixture(autouse=True)
def fast_reaper(settings: SettingsWrapper) -> None:
    settings.JOB_STALE_AFTER_SECONDS = 3


@pytest.fixture
def postgres_only() -> None:
    if connections["default"].vendor != "postgresql":
        pytest.skip("the lock that stops the worker at a known point is PostgreSQL's")


def _locked(table: str) -> psycopg.Connection[Any]:
    """A connection holding an exclusive lock on ``table`` until it rolls back."""
    db = connections["default"].settings_dict
    lock = psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=int(db["PORT"] or 5432),
        user=db["USER"] or "postgres",
        dbname=db["NAME"],
    )
    lock.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    return lock


def _wait(what: str, check: Callable[[], bool], timeout: float, workers: CeleryWorkers) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:g} s\n{workers.output()}")
        time.sleep(0.1)


def _heartbeat(model: Any, pk: int) -> datetime:
    return model.objects.values_list("heartbeat_at", flat=True).get(pk=pk)


@pytest.fixture
def spare(redis_url: str) -> Iterator[Callable[[], CeleryWorkers]]:
    """Starts the worker that comes after the kill: one, with the beat embedded."""
    started: list[CeleryWorkers] = []

    def start() -> CeleryWorkers:
        workers = CeleryWorkers(
            database_url=current_database_url(),
            broker_url=redis_url,
            count=1,
            name="spare",
            env=FAST,
            args=("-B", "--schedule", "/tmp/celerybeat-test-schedule"),
        )
        started.append(workers)
        workers.start()
        return workers

    yield start
    for workers in started:
        workers.stop()


def test_a_backtest_whose_worker_is_killed_is_finished_by_another(
    postgres_only: None,
    stored_bars: dict[str, int],
    sma_version: StrategyVersion,
    redis_url: str,
    spare: Callable[[], CeleryWorkers],
) -> None:
    run = services.backtest_run_create(strategy_version=sma_version, config=BacktestConfig())
    doomed = CeleryWorkers(
        database_url=current_database_url(), broker_url=redis_url, count=1, name="doomed", env=FAST
    )
    lock = _locked("marketdata_bar")  # the run's bars: the worker waits inside the run
    try:
        doomed.start()
        with app.connection_for_write(redis_url) as broker:
            run_backtest.apply_async(args=[run.pk], connection=broker)
        running = BacktestRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING)
        _wait("the worker claims the run", running.exists, 30, doomed)
        first = _heartbeat(BacktestRun, run.pk)
        _wait(
            "its heartbeat ticks while it waits",
            lambda: _heartbeat(BacktestRun, run.pk) > first,
            10,
            doomed,
        )
        doomed.kill()
    finally:
        lock.rollback()
        lock.close()
        doomed.stop()

    _wait("health names the stuck run", lambda: not check_jobs().healthy, 10, doomed)
    assert f"backtest {run.pk}" in check_jobs().detail
    workers = spare()
    finished = BacktestRun.objects.filter(pk=run.pk, status=RunStatus.SUCCEEDED)
    _wait(
        "the spare worker's reaper re-queues it and the run finishes", finished.exists, 90, workers
    )

    run.refresh_from_db()
    assert run.attempts == 2, run.error_message
    assert run.total_trades
    assert BacktestTrade.objects.filter(run=run).count() == run.total_trades
    assert check_jobs().healthy


WF = WalkForwardConfig(
    in_sample_days=120,
    out_of_sample_days=40,
    step_days=40,
    parameter_grid={"fast": [5, 8, 10], "slow": [20, 30, 40]},
    min_trades_required=1,
)


def test_a_walk_forward_that_loses_a_task_with_its_worker_still_finishes(
    postgres_only: None,
    stored_bars: dict[str, int],
    sma_version: StrategyVersion,
    redis_url: str,
    spare: Callable[[], CeleryWorkers],
) -> None:
    run = walkforward_services.walk_forward_run_create(
        strategy_version=sma_version, wf_config=WF, backtest_config=BacktestConfig()
    )
    doomed = CeleryWorkers(
        database_url=current_database_url(), broker_url=redis_url, count=1, name="doomed", env=FAST
    )
    # the first evaluation's worker waits on the evaluations table and dies holding its task
    lock = _locked("backtests_walkforwardevaluation")
    try:
        doomed.start()
        with app.connection_for_write(redis_url) as broker:
            wf_start.apply_async(args=[run.pk], connection=broker)
        started = WalkForwardRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING)
        _wait("the worker starts the run", started.exists, 30, doomed)
        time.sleep(1.0)  # it has queued the evaluations and taken the first
        doomed.kill()
    finally:
        lock.rollback()
        lock.close()
        doomed.stop()

    workers = spare()
    finished = WalkForwardRun.objects.filter(pk=run.pk, status=RunStatus.SUCCEEDED)
    _wait(
        "the reaper sends the lost task again and the run finishes", finished.exists, 120, workers
    )

    run.refresh_from_db()
    assert run.tasks_done == run.tasks_total == 7 * (9 + 1)
    assert run.result is not None and run.result["grid_size"] == 9
    assert "walkforward.revived" in workers.output()  # the lost task came back by the reaper

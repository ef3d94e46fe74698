"""A walk-forward run fanned out over two real Celery worker processes, Redis as the broker.

The workers are separate ``celery -A config worker`` processes on this test database; the test
only sends the start message. Both workers take grid points, progress is visible while they run,
and the gathered result is the one ``WalkForwardEngine`` computes in one process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections

from backtests import walkforward_services
from backtests.models import RunStatus, WalkForwardRun
from backtests.services import market_data_load
from backtests.walkforward_tasks import wf_start
from config.celery import app
from quant.backtest import BacktestConfig
from quant.backtest.walkforward import WalkForwardConfig, WalkForwardEngine
from research.models import StrategyVersion
from tests.backtests.conftest import sma_config
from tests.support.celery_workers import CeleryWorkers
from tests.support.fixtures import current_database_url

pytestmark = pytest.mark.django_db(transaction=True)

WF = WalkForwardConfig(
    in_sample_days=120,
    out_of_sample_days=40,
    step_days=40,
    parameter_grid={"fast": [5, 8, 10], "slow": [20, 30, 40]},
    min_trades_required=1,
)


@pytest.fixture
def workers(redis_url: str) -> Iterator[CeleryWorkers]:
    connection: Any = connections["default"]
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("an in-memory SQLite database is invisible to worker processes")
    with CeleryWorkers(database_url=current_database_url(), broker_url=redis_url) as started:
        yield started


def test_a_run_fans_out_over_two_worker_processes(
    stored_bars: dict[str, int],
    sma_version: StrategyVersion,
    redis_url: str,
    workers: CeleryWorkers,
) -> None:
    run = walkforward_services.walk_forward_run_create(
        strategy_version=sma_version, wf_config=WF, backtest_config=BacktestConfig()
    )
    assert run.tasks_total == 7 * (9 + 1)
    seen: list[tuple[str, int]] = []

    def progress(current: WalkForwardRun) -> None:
        workers.check_alive()
        seen.append((current.status, current.tasks_done))

    with app.connection_for_write(redis_url) as broker:
        wf_start.apply_async(args=[run.pk], connection=broker)
    run = walkforward_services.walk_forward_run_wait(
        run=run, timeout=240, poll=0.05, on_progress=progress
    )

    assert run.status == RunStatus.SUCCEEDED, run.error_message or workers.output()
    # progress moved in steps while the workers ran, never backwards
    done = [n for status, n in seen if status == RunStatus.RUNNING]
    assert len(set(done)) >= 3 and done == sorted(done)
    rows = list(run.windows.order_by("index"))
    ran_by = {(g["worker"], g["pid"]) for row in rows for g in row.grid_results}
    assert {worker for worker, _ in ran_by} == set(workers.hostnames)
    assert os.getpid() not in {pid for _, pid in ran_by}
    assert {pid for _, pid in ran_by} == {p.pid for p in workers.processes}
    local = (
        WalkForwardEngine()
        .run(
            sma_config(),
            market_data_load(symbols=("SPY",), timeframe="1Day", start=None, end=None),
            WF,
            BacktestConfig(),
        )
        .as_dict()
    )
    assert run.result is not None
    assert run.result["aggregated_metrics"] == local["aggregated_metrics"]
    assert run.result["overfitting"] == local["overfitting"]
    assert run.result["parameter_stability"] == local["parameter_stability"]
    assert [row.best_params for row in rows] == [w["params"] for w in local["windows"]]
    assert run.report_html.read().startswith(b"<!")

"""Walk-forward runs: creation checks, the Celery fan-out (in process), progress, cancel,
failures naming the window, the admin and the reports. ``test_walk_forward_workers.py``
runs the same fan-out over real worker processes."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from backtests import walkforward_celery, walkforward_services
from backtests.models import (
    RunStatus,
    WalkForwardEvaluation,
    WalkForwardRun,
    WalkForwardWindow,
    tag_non_finite,
)
from backtests.services import market_data_load
from quant.backtest import BacktestConfig
from quant.backtest.walkforward import (
    Evaluation,
    Job,
    WalkForwardConfig,
    WalkForwardEngine,
    run_job,
)
from quant.errors import ConflictError, ValidationError
from research.models import StrategyVersion
from research.services import strategy_version_ensure
from tests.backtests.conftest import sma_config

pytestmark = pytest.mark.django_db

GRID = {"fast": [5, 10], "slow": [20, 40]}


def wf_config(**changes: Any) -> WalkForwardConfig:
    values: dict[str, Any] = {
        "in_sample_days": 120,
        "out_of_sample_days": 40,
        "step_days": 40,
        "parameter_grid": GRID,
        "min_trades_required": 1,
    }
    values.update(changes)
    return WalkForwardConfig(**values)


@pytest.fixture
def eager(settings: SettingsWrapper) -> SettingsWrapper:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    return settings


@pytest.fixture
def start(
    stored_bars: dict[str, int],
    sma_version: StrategyVersion,
    eager: SettingsWrapper,
    django_capture_on_commit_callbacks: Any,
) -> Callable[..., WalkForwardRun]:
    """Create and submit a run; its tasks run in process, as the worker would run them."""

    def go(**changes: Any) -> WalkForwardRun:
        run = walkforward_services.walk_forward_run_create(
            strategy_version=sma_version,
            wf_config=wf_config(**changes),
            backtest_config=BacktestConfig(),
        )
        with django_capture_on_commit_callbacks(execute=True):
            walkforward_services.walk_forward_run_submit(run=run)
        run.refresh_from_db()
        return run

    return go


@pytest.fixture
def jobs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Job]]:
    """Every job the workers ran, in order."""
    ran: list[Job] = []

    def recording(job: Job, data: Any) -> Evaluation:
        ran.append(job)
        return run_job(job, data)

    monkeypatch.setattr(walkforward_celery, "run_job", recording)
    yield ran


def test_a_run_fans_out_and_stores_the_engine_result(
    start: Callable[..., WalkForwardRun], jobs: list[Job]
) -> None:
    run = start()

    assert run.status == RunStatus.SUCCEEDED, run.error_message
    windows = list(run.windows.all())
    assert len(windows) == 7 and run.tasks_total == 7 * (4 + 1)
    assert run.tasks_done == run.tasks_total and run.progress == 1.0
    assert not WalkForwardEvaluation.objects.exists()  # gathered into the windows and reports
    assert len(jobs) == 7 * 4 + sum(1 for w in windows if not w.flag)
    # the same numbers as the engine in one process on the same bars
    local = WalkForwardEngine().run(
        sma_config(),
        market_data_load(symbols=("SPY",), timeframe="1Day", start=None, end=None),
        wf_config(),
        BacktestConfig(),
    )
    expected = local.as_dict()
    assert run.result is not None
    assert run.result["aggregated_metrics"] == expected["aggregated_metrics"]
    assert run.result["overfitting"] == expected["overfitting"]
    assert run.result["parameter_stability"] == expected["parameter_stability"]
    assert run.result["aggregated_trades"] == len(expected["aggregated_trades"]) > 0
    for row, window in zip(windows, expected["windows"], strict=True):
        assert row.best_params == window["params"]
        assert row.in_sample_metrics == window["in_sample_metrics"]
        assert row.out_of_sample_metrics == window["out_of_sample_metrics"]
        assert row.out_of_sample_trades == window["out_of_sample_trades"]
        assert row.in_sample_start.isoformat() == window["in_sample_start"]
        assert row.out_of_sample_end.isoformat() == window["out_of_sample_end"]
        assert [
            {k: g[k] for k in ("params", "objective", "trades")} for g in row.grid_results
        ] == window["grid_results"]
        assert all(g["pid"] and g["worker"] for g in row.grid_results)
    assert (
        run.equity_curve
        and run.equity_curve[-1]["equity"] == expected["equity_curve"][-1]["equity"]
    )
    assert run.report_html.read().startswith(b"<!")
    assert b'"aggregated_trades"' in run.report_json.read()
    assert run.backtest_config["start_date"].startswith("2022-01-03")  # the range is pinned


def test_progress_is_visible_while_the_tasks_run(
    start: Callable[..., WalkForwardRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, int, int]] = []

    def watching(job: Job, data: Any) -> Evaluation:
        status, done, total = WalkForwardRun.objects.values_list(
            "status", "tasks_done", "tasks_total"
        ).get()
        seen.append((status, done, total))
        return run_job(job, data)

    monkeypatch.setattr(walkforward_celery, "run_job", watching)
    run = start()

    assert run.status == RunStatus.SUCCEEDED
    assert {s for s, _, _ in seen} == {RunStatus.RUNNING}
    done = [d for _, d, _ in seen]
    assert done == sorted(done) and done[0] == 0 and 0 < done[-1] < run.tasks_total
    assert run.progress == 1.0


def test_cancel_stops_further_tasks(
    start: Callable[..., WalkForwardRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Job] = []

    def cancelling(job: Job, data: Any) -> Evaluation:
        calls.append(job)
        if len(calls) == 3:
            walkforward_services.walk_forward_run_cancel(run=WalkForwardRun.objects.get())
        return run_job(job, data)

    monkeypatch.setattr(walkforward_celery, "run_job", cancelling)
    run = start()

    assert run.status == RunStatus.CANCELLED and run.cancel_requested
    assert len(calls) == 3  # the other 32 tasks found the run cancelled and returned
    assert run.tasks_done == 2  # the third evaluation finished after the cancel: not stored
    assert run.result is None and not run.report_html
    with pytest.raises(ConflictError, match="already finished"):
        walkforward_services.walk_forward_run_cancel(run=run)


def test_a_failed_task_fails_the_run_naming_the_window_and_params(
    start: Callable[..., WalkForwardRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(job: Job, data: Any) -> Evaluation:
        if job.plan.index == 2 and job.params == {"fast": 10, "slow": 20}:
            raise ZeroDivisionError("boom")
        return run_job(job, data)

    monkeypatch.setattr(walkforward_celery, "run_job", failing)
    run = start()

    assert run.status == RunStatus.FAILED
    assert run.error_message.startswith("window 2 (in-sample 2022-")
    assert "params fast=10, slow=20: internal error: ZeroDivisionError: boom" in run.error_message
    assert run.result is None and run.finished_at is not None


def test_a_redelivered_evaluation_is_stored_and_counted_once(
    stored_bars: dict[str, int], sma_version: StrategyVersion
) -> None:
    run = walkforward_services.walk_forward_run_create(
        strategy_version=sma_version, wf_config=wf_config(), backtest_config=BacktestConfig()
    )
    WalkForwardRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)

    for _ in range(2):
        walkforward_celery.walk_forward_in_sample(run_id=run.pk, window=1, point=3)

    run.refresh_from_db()
    assert run.tasks_done == 1
    window = WalkForwardWindow.objects.get(run=run, index=1)
    assert [e.point for e in window.evaluations.all()] == [3]
    # and the database refuses a second row outright
    with pytest.raises(IntegrityError), transaction.atomic():
        WalkForwardEvaluation.objects.create(
            window=window, segment="in_sample", point=3, evaluation={}
        )


def test_non_finite_floats_round_trip_through_the_evaluation_rows(
    stored_bars: dict[str, int], sma_version: StrategyVersion
) -> None:
    run = walkforward_services.walk_forward_run_create(
        strategy_version=sma_version, wf_config=wf_config(), backtest_config=BacktestConfig()
    )
    window = WalkForwardWindow.objects.get(run=run, index=0)
    value = {
        "metrics": {"profit_factor": math.inf, "sharpe_ratio": -math.inf, "x": 0.1 + 0.2},
        "returns": [0.5, math.nan, 1e-300, 2.0**-1074],
        "nested": [{"a": math.inf}, [math.nan]],
        "$float": "a real key of that name is kept",
    }
    WalkForwardEvaluation.objects.create(
        window=window, segment="in_sample", point=0, evaluation=tag_non_finite(value)
    )
    back = WalkForwardEvaluation.objects.get(window=window).evaluation
    # JSON text with sorted keys compares NaN to NaN and every float to the bit (jsonb keeps
    # exact numbers but not key order)
    assert json.dumps(back, sort_keys=True) == json.dumps(value, sort_keys=True)
    listed = WalkForwardEvaluation.objects.values_list("evaluation", flat=True).get()
    assert json.dumps(listed, sort_keys=True) == json.dumps(value, sort_keys=True)


def test_windows_with_too_few_trades_are_flagged(start: Callable[..., WalkForwardRun]) -> None:
    run = start(min_trades_required=1000)

    assert run.status == RunStatus.SUCCEEDED
    flags = list(run.windows.values_list("flag", flat=True))
    assert len(flags) == 7 and all(
        f.startswith("no grid point reached 1000 trade(s)") for f in flags
    )
    assert run.result is not None and run.result["flagged_windows"] == 7
    assert run.result["aggregated_metrics"]["total_trades"] == 0


def test_bad_input_is_refused_and_nothing_is_stored(
    stored_bars: dict[str, int], sma_version: StrategyVersion
) -> None:
    def create(config: WalkForwardConfig) -> None:
        walkforward_services.walk_forward_run_create(
            strategy_version=sma_version, wf_config=config, backtest_config=BacktestConfig()
        )

    with pytest.raises(
        ValidationError, match=r"unknown parameter\(s\) 'fats' \(did you mean 'fast'\?\)"
    ):
        create(wf_config(parameter_grid={"fats": [5]}))
    with pytest.raises(ValidationError, match=r"windows longer than the data: .* the data has 400"):
        create(wf_config(in_sample_days=390))
    assert not WalkForwardRun.objects.exists()


def test_an_unreviewed_strategy_is_refused(stored_bars: dict[str, int]) -> None:
    version, _ = strategy_version_ensure(config=sma_config(name="unreviewed"), source="file")
    with pytest.raises(ConflictError, match="has not been reviewed"):
        walkforward_services.walk_forward_run_create(
            strategy_version=version, wf_config=wf_config(), backtest_config=BacktestConfig()
        )


def test_grid_parse_reads_numbers_and_names_bad_specs() -> None:
    grid = walkforward_services.grid_parse(["fast=5,10", "ratio=0.5, 1.5", "mode=a,b"])
    assert grid == {"fast": [5, 10], "ratio": [0.5, 1.5], "mode": ["a", "b"]}
    for bad, message in (
        ("fast", "write name=value1,value2"),
        ("fast=5,,10", "an empty value"),
        ("=5", "write name=value1,value2"),
    ):
        with pytest.raises(ValidationError, match=message):
            walkforward_services.grid_parse([bad])
    with pytest.raises(ValidationError, match="given twice"):
        walkforward_services.grid_parse(["fast=5", "fast=6"])


def test_the_admin_starts_a_run_and_shows_windows_and_reports(
    admin_client: Client,
    stored_bars: dict[str, int],
    sma_version: StrategyVersion,
    eager: SettingsWrapper,
    django_capture_on_commit_callbacks: Any,
) -> None:
    assert admin_client.get("/admin/backtests/walkforwardrun/add/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/backtests/walkforwardrun/add/",
            {
                "strategy": sma_version.strategy_id,
                "in_sample_days": "120",
                "out_of_sample_days": "40",
                "step_days": "40",
                "window_type": "anchored",
                "grid": "fast=5,10\nslow=20,40",
                "objective": "sharpe",
                "min_trades": "1",
                "initial_capital": "50000",
                "commission": "1.00",
                "slippage_bps": "10",
            },
        )
    assert response.status_code == 302, response.content.decode()[:3000]
    run = WalkForwardRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    assert run.wf_config["window_type"] == "anchored"
    assert run.backtest_config["initial_capital"] == str(Decimal("50000"))

    page = admin_client.get(f"/admin/backtests/walkforwardrun/{run.pk}/change/").content.decode()
    assert f"/backtests/walk-forward/{run.pk}/report.html" in page
    assert "100%" in page and "fast" in page and "Out-of-sample" in page
    assert admin_client.get("/admin/backtests/walkforwardrun/").status_code == 200
    report = admin_client.get(f"/backtests/walk-forward/{run.pk}/report.html")
    assert report.status_code == 200 and report["Content-Type"].startswith("text/html")
    assert admin_client.get(f"/backtests/walk-forward/{run.pk}/report.json").status_code == 200
    assert admin_client.get(f"/backtests/walk-forward/{run.pk}/report.pdf").status_code == 404
    assert Client().get(f"/backtests/walk-forward/{run.pk}/report.html").status_code == 302


def test_the_admin_form_names_a_bad_grid(
    admin_client: Client, stored_bars: dict[str, int], sma_version: StrategyVersion
) -> None:
    response = admin_client.post(
        "/admin/backtests/walkforwardrun/add/",
        {
            "strategy": sma_version.strategy_id,
            "in_sample_days": "120",
            "out_of_sample_days": "40",
            "step_days": "40",
            "window_type": "rolling",
            "grid": "fats=5,10",
            "objective": "sharpe",
            "min_trades": "1",
            "initial_capital": "50000",
            "commission": "1.00",
            "slippage_bps": "10",
        },
    )
    assert response.status_code == 200
    assert "did you mean &#x27;fast&#x27;?" in response.content.decode()
    assert not WalkForwardRun.objects.exists()


def test_the_admin_cancels_a_queued_run(
    admin_client: Client, stored_bars: dict[str, int], sma_version: StrategyVersion
) -> None:
    run = walkforward_services.walk_forward_run_create(
        strategy_version=sma_version, wf_config=wf_config(), backtest_config=BacktestConfig()
    )
    response = admin_client.post(
        "/admin/backtests/walkforwardrun/",
        {"action": "cancel", "_selected_action": [run.pk]},
        follow=True,
    )
    assert response.status_code == 200
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED


def test_workers_warm_up_the_report_code_when_they_start(db: None) -> None:
    from celery.signals import worker_ready

    from backtests.walkforward_tasks import warm_up_worker

    assert warm_up_worker in [ref() for _, ref in worker_ready.receivers]
    before = WalkForwardRun.objects.count(), WalkForwardEvaluation.objects.count()
    walkforward_celery.warm_up()  # raises on any error (the signal handler only logs it)
    assert (WalkForwardRun.objects.count(), WalkForwardEvaluation.objects.count()) == before

"""Jobs whose worker died: the reaper (``common.jobs.jobs_reap`` over ``config.jobs.JOB_KINDS``)
re-queues, revives, cancels or fails every kind of long job, cancel ends a job with no live
worker, a message delivered twice runs a job once, and health names stuck jobs.

The worker's death is simulated here by an old ``heartbeat_at`` on a RUNNING row (what a
``kill -9`` leaves); ``tests/backtests/test_worker_death.py`` kills real worker processes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import DjangoCaptureOnCommitCallbacks as OnCommit
from pytest_django.fixtures import Settings as SettingsWrapper

from backtests import services, walkforward_celery, walkforward_services
from backtests.models import (
    BacktestRun,
    BacktestTrade,
    RunStatus,
    WalkForwardEvaluation,
    WalkForwardRun,
)
from backtests.tasks import run_backtest
from config.jobs import check_jobs, jobs_reap_all
from marketdata.domain import Timeframe
from marketdata.models import IngestionJob, JobStatus
from marketdata.services import ingestion_job_create, ingestion_job_run
from quant.backtest import BacktestConfig
from quant.backtest.walkforward import WalkForwardConfig
from quant.errors import ValidationError
from research.models import StrategyVersion
from tests.backtests.conftest import START
from tests.support.api import client_for, make_user

pytestmark = pytest.mark.django_db

LONG_AGO = timedelta(minutes=10)


@pytest.fixture(autouse=True)
def eager(settings: SettingsWrapper) -> SettingsWrapper:
    """Tasks the reaper sends run in-process at once; the reaper's limits are the defaults."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.JOB_STALE_AFTER_SECONDS = 60
    settings.JOB_MAX_ATTEMPTS = 3
    return settings


@pytest.fixture
def operator_api(db: None) -> Client:
    return client_for(make_user("operator"))


def _died(model: Any, pk: int, **fields: Any) -> None:
    """What a worker killed mid-job leaves: the row RUNNING, its heartbeat stopped."""
    model.objects.filter(pk=pk).update(heartbeat_at=timezone.now() - LONG_AGO, **fields)


def _running_backtest(version: StrategyVersion, attempts: int = 1) -> BacktestRun:
    run = services.backtest_run_create(strategy_version=version, config=BacktestConfig())
    _died(
        BacktestRun,
        run.pk,
        status=RunStatus.RUNNING,
        started_at=timezone.now() - LONG_AGO,
        attempts=attempts,
    )
    return run


# --- backtests ----------------------------------------------------------------------------


def test_a_backtest_whose_worker_died_is_requeued_and_runs_to_the_end(
    stored_bars: dict[str, int], sma_version: StrategyVersion
) -> None:
    run = _running_backtest(sma_version)
    assert not check_jobs().healthy

    actions = jobs_reap_all()

    assert [(a.kind, a.job_id, a.action) for a in actions] == [("backtest", run.pk, "requeued")]
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    assert run.attempts == 2  # the dead worker's attempt and the one that finished
    assert run.total_trades
    assert BacktestTrade.objects.filter(run=run).count() == run.total_trades
    assert check_jobs().healthy


def test_a_live_backtest_is_left_alone(
    stored_bars: dict[str, int], sma_version: StrategyVersion
) -> None:
    run = _running_backtest(sma_version)
    BacktestRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())

    assert jobs_reap_all() == []
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and check_jobs().healthy


def test_a_backtest_that_killed_its_workers_too_often_fails_with_the_reason(
    stored_bars: dict[str, int], sma_version: StrategyVersion
) -> None:
    run = _running_backtest(sma_version, attempts=3)

    (action,) = jobs_reap_all()

    run.refresh_from_db()
    assert action.action == "failed" and run.status == RunStatus.FAILED
    assert "its worker stopped answering (no heartbeat for 600 s) after 3 attempt(s)" in (
        run.error_message
    )
    assert "JOB_MAX_ATTEMPTS=3" in run.error_message and run.finished_at is not None


def test_cancel_ends_a_running_backtest_whose_worker_is_gone(
    stored_bars: dict[str, int], sma_version: StrategyVersion
) -> None:
    dead = _running_backtest(sma_version)
    alive = _running_backtest(sma_version)
    BacktestRun.objects.filter(pk=alive.pk).update(heartbeat_at=timezone.now())

    services.backtest_run_cancel(run=dead)
    services.backtest_run_cancel(run=alive)

    assert dead.status == RunStatus.CANCELLED and dead.finished_at is not None
    # a live worker reads the flag at its next progress check and stops there
    assert alive.status == RunStatus.RUNNING and alive.cancel_requested


def test_cancel_through_the_api_ends_a_run_without_a_worker(
    stored_bars: dict[str, int], sma_version: StrategyVersion, operator_api: Client
) -> None:
    run = _running_backtest(sma_version)

    response = operator_api.post(f"/v1/runs/{run.pk}/cancel")

    assert response.status_code == 200, response.content
    assert response.json()["data"]["status"] == "cancelled"


def test_cancel_from_the_admin_ends_a_run_without_a_worker(
    stored_bars: dict[str, int], sma_version: StrategyVersion, admin_client: Client
) -> None:
    dead = _running_backtest(sma_version)

    response = admin_client.post(
        "/admin/backtests/backtestrun/",
        {"action": "cancel", "_selected_action": [dead.pk]},
        follow=True,
    )

    dead.refresh_from_db()
    assert dead.status == RunStatus.CANCELLED
    assert f"Run {dead.pk} cancelled" in next(str(m) for m in response.context["messages"])


def test_a_dead_run_whose_cancel_was_asked_is_cancelled_not_requeued(
    stored_bars: dict[str, int], sma_version: StrategyVersion
) -> None:
    run = _running_backtest(sma_version)
    BacktestRun.objects.filter(pk=run.pk).update(cancel_requested=True)

    (action,) = jobs_reap_all()

    run.refresh_from_db()
    assert action.action == "cancelled" and run.status == RunStatus.CANCELLED


def test_a_message_delivered_twice_runs_the_backtest_once(
    stored_bars: dict[str, int], sma_version: StrategyVersion
) -> None:
    run = _running_backtest(sma_version)
    BacktestRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())

    run_backtest(run.pk)  # the same message again, while its first worker is alive

    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.attempts == 1


def test_a_queued_backtest_nobody_took_is_sent_again(
    stored_bars: dict[str, int], sma_version: StrategyVersion, settings: SettingsWrapper
) -> None:
    run = services.backtest_run_create(strategy_version=sma_version, config=BacktestConfig())
    settings.JOB_QUEUED_RESEND_SECONDS = 300
    BacktestRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - LONG_AGO)

    (action,) = jobs_reap_all()

    run.refresh_from_db()
    assert action.action == "resent" and run.status == RunStatus.SUCCEEDED


def test_the_reaper_acts_once_on_a_job_two_reapers_see(
    stored_bars: dict[str, int], sma_version: StrategyVersion, settings: SettingsWrapper
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False  # keep the re-queued run in the queue
    run = _running_backtest(sma_version)
    sent: list[int] = []
    from common import jobs

    original = jobs._send_again
    jobs._send_again = lambda kind, pk: sent.append(pk)
    try:
        first = jobs_reap_all()
        second = jobs_reap_all()  # it is QUEUED now, stamped just now
    finally:
        jobs._send_again = original

    assert [a.action for a in first] == ["requeued"] and second == [] and sent == [run.pk]
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


# --- health -------------------------------------------------------------------------------


def test_health_names_a_stuck_job(
    stored_bars: dict[str, int], sma_version: StrategyVersion, operator_api: Client
) -> None:
    run = _running_backtest(sma_version)

    status = check_jobs()
    probe = Client().get("/healthz")  # the load balancer's probe: no detail
    detail = operator_api.get("/v1/health").json()["data"]

    assert not status.healthy
    assert f"backtest {run.pk} (no heartbeat for 600 s)" in status.detail
    assert probe.status_code == 503 and probe.json()["components"]["jobs"]["healthy"] is False
    jobs = next(c for c in detail["components"] if c["name"] == "jobs")
    assert jobs == {"name": "jobs", "healthy": False, "detail": status.detail}


# --- walk-forward -------------------------------------------------------------------------

WF = WalkForwardConfig(
    in_sample_days=120,
    out_of_sample_days=40,
    step_days=40,
    parameter_grid={"fast": [5, 10], "slow": [20, 30]},
    min_trades_required=1,
)


def test_a_walk_forward_that_lost_a_task_is_revived_and_finishes(
    stored_bars: dict[str, int],
    sma_version: StrategyVersion,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: OnCommit,
) -> None:
    run = walkforward_services.walk_forward_run_create(
        strategy_version=sma_version, wf_config=WF, backtest_config=BacktestConfig()
    )
    original = walkforward_celery._send
    lost: list[tuple[Any, ...]] = []

    def send_but_lose_one(task: str, run_id: int, *args: Any) -> bool:
        if task == "backtests.wf_evaluate" and args == (1, 2) and not lost:
            lost.append(args)  # the message a killed worker took with it
            return True
        return original(task, run_id, *args)

    monkeypatch.setattr(walkforward_celery, "_send", send_but_lose_one)
    walkforward_celery.walk_forward_start(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.tasks_done == run.tasks_total - 2
    monkeypatch.setattr(walkforward_celery, "_send", original)
    _died(WalkForwardRun, run.pk)

    with django_capture_on_commit_callbacks(execute=True):  # the gather, queued on commit
        (action,) = jobs_reap_all()

    run.refresh_from_db()
    assert (action.kind, action.action, action.detail) == (
        "walk-forward",
        "revived",
        "1 task(s) sent again",
    )
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    assert run.tasks_done == run.tasks_total
    assert not WalkForwardEvaluation.objects.filter(window__run=run).exists()


def test_a_walk_forward_whose_gather_was_lost_is_gathered(
    stored_bars: dict[str, int], sma_version: StrategyVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = walkforward_services.walk_forward_run_create(
        strategy_version=sma_version, wf_config=WF, backtest_config=BacktestConfig()
    )
    original = walkforward_celery._send

    def lose_the_gather(task: str, run_id: int, *args: Any) -> bool:
        return True if task == "backtests.wf_gather" else original(task, run_id, *args)

    monkeypatch.setattr(walkforward_celery, "_send", lose_the_gather)
    walkforward_celery.walk_forward_start(run_id=run.pk)
    monkeypatch.setattr(walkforward_celery, "_send", original)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.tasks_done == run.tasks_total
    _died(WalkForwardRun, run.pk)

    jobs_reap_all()

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error_message


def test_a_walk_forward_that_never_progresses_fails_after_its_attempts(
    stored_bars: dict[str, int], sma_version: StrategyVersion
) -> None:
    run = walkforward_services.walk_forward_run_create(
        strategy_version=sma_version, wf_config=WF, backtest_config=BacktestConfig()
    )
    _died(WalkForwardRun, run.pk, status=RunStatus.RUNNING, attempts=3)

    (action,) = jobs_reap_all()

    run.refresh_from_db()
    assert action.action == "failed" and run.status == RunStatus.FAILED
    assert run.error_message.startswith("its tasks stopped: its worker stopped answering")


def test_walk_forward_progress_resets_the_attempts(
    stored_bars: dict[str, int], sma_version: StrategyVersion, settings: SettingsWrapper
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False
    run = walkforward_services.walk_forward_run_create(
        strategy_version=sma_version, wf_config=WF, backtest_config=BacktestConfig()
    )
    _died(WalkForwardRun, run.pk, status=RunStatus.RUNNING, attempts=2)

    walkforward_celery.walk_forward_in_sample(run_id=run.pk, window=0, point=0)

    run.refresh_from_db()
    assert run.tasks_done == 1 and run.attempts == 0
    assert timezone.now() - run.heartbeat_at < timedelta(seconds=30)


@pytest.mark.parametrize(
    ("grid", "wf", "limit", "message"),
    [
        (
            {"fast": list(range(2, 42)), "slow": list(range(50, 80))},
            {},
            ("WALK_FORWARD_MAX_GRID_POINTS", 1000),
            "parameter_grid: this request makes 1,200 grid points; one walk-forward run may "
            "have at most 1,000 (WALK_FORWARD_MAX_GRID_POINTS)",
        ),
        (
            {"fast": [5]},
            {"in_sample_days": 20, "out_of_sample_days": 1, "step_days": 1},
            ("WALK_FORWARD_MAX_WINDOWS", 250),
            "windows: this request makes 380 windows; one walk-forward run may have at most "
            "250 (WALK_FORWARD_MAX_WINDOWS)",
        ),
        (
            {"fast": list(range(2, 12)), "slow": list(range(50, 60))},
            {"in_sample_days": 20, "out_of_sample_days": 5, "step_days": 5},
            ("WALK_FORWARD_MAX_TASKS", 5000),
            "grid points x windows: this request makes 7,676 tasks; one walk-forward run may "
            "have at most 5,000 (WALK_FORWARD_MAX_TASKS)",
        ),
    ],
)
def test_what_one_walk_forward_may_queue_is_capped(
    stored_bars: dict[str, int],
    sma_version: StrategyVersion,
    grid: dict[str, list[int]],
    wf: dict[str, int],
    limit: tuple[str, int],
    message: str,
    settings: SettingsWrapper,
) -> None:
    setattr(settings, limit[0], limit[1])
    sizes = {"in_sample_days": 120, "out_of_sample_days": 40, "step_days": 40, **wf}
    config = WalkForwardConfig(
        in_sample_days=sizes["in_sample_days"],
        out_of_sample_days=sizes["out_of_sample_days"],
        step_days=sizes["step_days"],
        parameter_grid=grid,
    )

    with pytest.raises(ValidationError) as caught:
        walkforward_services.walk_forward_run_create(
            strategy_version=sma_version, wf_config=config, backtest_config=BacktestConfig()
        )

    assert message in caught.value.message
    assert not WalkForwardRun.objects.exists()


def test_the_api_refuses_an_oversized_walk_forward_with_422(
    stored_bars: dict[str, int], sma_version: StrategyVersion, operator_api: Client
) -> None:
    response = operator_api.post(
        "/v1/walk-forward",
        {
            "strategy_id": sma_version.strategy_id,
            "in_sample_days": 120,
            "out_of_sample_days": 40,
            "step_days": 40,
            "parameter_grid": {"fast": list(range(2, 42)), "slow": list(range(50, 80))},
        },
        content_type="application/json",
    )

    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert "1,200 grid points" in error["message"] and "at most 1,000" in error["message"]
    assert not WalkForwardRun.objects.exists()


# --- ingestion ----------------------------------------------------------------------------


def test_an_ingestion_whose_worker_died_resumes_from_the_queue() -> None:
    job = ingestion_job_create(
        provider="synthetic",
        symbols=["SPY"],
        timeframe=Timeframe.DAY_1,
        start=START,
        end=START + timedelta(days=60),
    )
    _died(IngestionJob, job.pk, status=JobStatus.RUNNING, attempts=1)

    assert ingestion_job_run(job_id=job.pk).status == JobStatus.RUNNING  # not taken twice
    (action,) = jobs_reap_all()

    job.refresh_from_db()
    assert (action.kind, action.action) == ("ingestion", "requeued")
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2 and job.rows_written > 0


# --- a lost connection is not the job's fault -----------------------------------------------


def test_a_backtest_that_loses_its_database_connection_is_run_again(
    stored_bars: dict[str, int], sma_version: StrategyVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = services.backtest_run_create(strategy_version=sma_version, config=BacktestConfig())

    def connection_lost(**_: Any) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    with monkeypatch.context() as patched:
        patched.setattr(services, "market_data_load", connection_lost)
        services.backtest_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.error_message == ""  # not failed
    _died(BacktestRun, run.pk)  # its heartbeat stopped with the attempt

    jobs_reap_all()

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.attempts == 2


def test_a_walk_forward_task_that_loses_its_connection_does_not_fail_the_run(
    stored_bars: dict[str, int],
    sma_version: StrategyVersion,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: OnCommit,
) -> None:
    """Found by the chaos test: one dropped PostgreSQL connection in one evaluation failed the
    whole walk-forward."""
    run = walkforward_services.walk_forward_run_create(
        strategy_version=sma_version, wf_config=WF, backtest_config=BacktestConfig()
    )
    from quant.backtest.walkforward import run_job as original

    calls: list[int] = []

    def drops_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise OperationalError("server closed the connection unexpectedly")
        return original(*args, **kwargs)

    monkeypatch.setattr("backtests.walkforward_celery.run_job", drops_once)
    with django_capture_on_commit_callbacks(execute=True):
        walkforward_celery.walk_forward_start(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.error_message == ""
    assert run.tasks_done == run.tasks_total - 2  # the lost evaluation and its window's step
    _died(WalkForwardRun, run.pk)

    with django_capture_on_commit_callbacks(execute=True):
        jobs_reap_all()

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error_message

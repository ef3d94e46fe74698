"""Admin: start a backtest from the form, see its results, re-run and cancel it."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from backtests import services
from backtests.models import BacktestRun, RunStatus
from backtests.tasks import run_backtest
from quant.backtest import BacktestConfig
from research.models import StrategyVersion

pytestmark = pytest.mark.django_db


class _Sent:
    id = "task-in-process"


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Runs queued tasks in-process, as the Celery worker would."""
    ran: list[int] = []

    def delay(run_id: int) -> _Sent:
        ran.append(run_id)
        run_backtest(run_id)
        return _Sent()

    monkeypatch.setattr(run_backtest, "delay", delay)
    return ran


def test_a_run_started_from_the_admin_produces_results(
    admin_client: Client,
    stored_bars: dict[str, int],
    sma_version: StrategyVersion,
    worker: list[int],
    django_capture_on_commit_callbacks: Any,
) -> None:
    form = admin_client.get("/admin/backtests/backtestrun/add/")
    assert form.status_code == 200 and b"initial_capital" in form.content

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/backtests/backtestrun/add/",
            {
                "strategy": sma_version.strategy_id,
                "start_day": "2022-02-01",
                "end_day": "",
                "initial_capital": "50000",
                "commission": "1.00",
                "slippage_bps": "10",
                "fill_at": "close",
                "max_volume_participation": "0.5",
                "volume_impact_bps": "5",
                "mode": "vectorized",
            },
        )

    assert response.status_code == 302, response.content.decode()[:2000]
    run = BacktestRun.objects.get()
    assert worker == [run.pk]
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    assert run.engine_mode == "vectorized" and run.backtest_config["initial_capital"] == "50000"
    assert run.backtest_config["max_volume_participation"] == "0.5"
    assert run.backtest_config["volume_impact_bps"] == "5"
    assert run.data_start is not None and run.data_start.date().isoformat() == "2022-02-01"
    page = admin_client.get(f"/admin/backtests/backtestrun/{run.pk}/change/")
    assert page.status_code == 200
    assert f"/backtests/runs/{run.pk}/report.html".encode() in page.content
    assert b"sharpe_ratio" in page.content and b"P&amp;L" in page.content


def test_the_form_rejects_a_reversed_range(
    admin_client: Client, sma_version: StrategyVersion
) -> None:
    response = admin_client.post(
        "/admin/backtests/backtestrun/add/",
        {
            "strategy": sma_version.strategy_id,
            "start_day": "2023-01-01",
            "end_day": "2022-01-01",
            "initial_capital": "100000",
            "commission": "1",
            "slippage_bps": "10",
            "fill_at": "close",
            "mode": "event",
        },
    )

    assert response.status_code == 200
    assert b"The first day is after the last day." in response.content
    assert not BacktestRun.objects.exists()


def test_rerun_and_cancel_actions(
    admin_client: Client,
    stored_bars: dict[str, int],
    sma_version: StrategyVersion,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    monkeypatch.setattr(run_backtest, "delay", lambda run_id: _Sent())
    done = services.backtest_run_create(strategy_version=sma_version, config=BacktestConfig())
    services.backtest_run_execute(run_id=done.pk)

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            "/admin/backtests/backtestrun/",
            {"action": "rerun", "_selected_action": [done.pk]},
        )
    again = BacktestRun.objects.exclude(pk=done.pk).get()
    assert again.status == RunStatus.QUEUED and again.task_id == "task-in-process"

    response = admin_client.post(
        "/admin/backtests/backtestrun/",
        {"action": "cancel", "_selected_action": [done.pk, again.pk]},
        follow=True,
    )

    again.refresh_from_db()
    assert again.status == RunStatus.CANCELLED
    messages = [str(m) for m in response.context["messages"]]
    assert any("already finished" in m for m in messages)
    assert any(f"Run {again.pk} cancelled" in m for m in messages)

"""The walk-forward pages: history, the start form for operators, one run with its windows,
out-of-sample charts and overfitting statistics."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from backtests import walkforward_services
from backtests.models import RunStatus, WalkForwardRun
from quant.backtest import BacktestConfig
from quant.backtest.walkforward import WalkForwardConfig
from research.models import StrategyVersion
from tests.support.dashboard import page

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished(
    stored_bars: dict[str, int],
    sma_version: StrategyVersion,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> WalkForwardRun:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    run = walkforward_services.walk_forward_run_create(
        strategy_version=sma_version,
        wf_config=WalkForwardConfig(
            in_sample_days=120,
            out_of_sample_days=40,
            step_days=40,
            parameter_grid={"fast": [5, 10], "slow": [20, 40]},
        ),
        backtest_config=BacktestConfig(),
    )
    with django_capture_on_commit_callbacks(execute=True):
        walkforward_services.walk_forward_run_submit(run=run)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    return run


def test_the_history_lists_runs_with_their_verdict(
    viewer: Client, finished: WalkForwardRun
) -> None:
    html = page(viewer, "/walk-forward")
    assert f'href="/walk-forward/{finished.pk}"' in html
    assert finished.result is not None
    assert finished.result["overfitting"]["verdict"][:60] in html
    assert "Start a walk-forward run" not in html  # viewers read only
    rows = page(viewer, "/walk-forward", fragment="wf_runs")
    assert "<html" not in rows and f"/walk-forward/{finished.pk}" in rows


def test_operators_get_the_start_form(operator: Client, sma_version: StrategyVersion) -> None:
    html = page(operator, "/walk-forward")
    assert "data-wf-form" in html and 'action="/v1/walk-forward"' in html
    assert "No walk-forward runs match" in html


def test_one_run_shows_windows_charts_and_overfitting(
    viewer: Client, finished: WalkForwardRun
) -> None:
    html = page(viewer, f"/walk-forward/{finished.pk}")
    windows = finished.windows.count()
    assert html.count("<code>fast=") == windows
    assert 'data-plotly="figure-wf-equity"' in html and 'id="figure-wf-drawdown"' in html
    assert "Deflated Sharpe" in html and "Stitched out-of-sample metrics" in html
    status = page(viewer, f"/walk-forward/{finished.pk}", fragment="status")
    assert 'data-run-final="1"' in status and f"{finished.tasks_total} of" in status


def test_an_unknown_run_is_404_and_anonymous_users_sign_in_first(viewer: Client) -> None:
    assert viewer.get("/walk-forward/999").status_code == 404
    response = Client().get("/walk-forward")
    assert response.status_code == 302 and response["Location"].startswith("/signin")

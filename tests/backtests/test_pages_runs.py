"""The runs pages: history, filters, the start form for operators, one run with its charts."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from backtests import services
from backtests.models import BacktestRun, RunStatus
from quant.backtest import BacktestConfig
from research.models import StrategyVersion
from tests.support.dashboard import page

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished_run(stored_bars: dict[str, int], sma_version: StrategyVersion) -> BacktestRun:
    run = services.backtest_run_create(strategy_version=sma_version, config=BacktestConfig())
    services.backtest_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    return run


def test_the_history_lists_runs_with_their_metrics(
    viewer: Client, finished_run: BacktestRun
) -> None:
    html = page(viewer, "/runs")
    assert f'href="/runs/{finished_run.pk}"' in html and "Succeeded" in html
    assert f"{finished_run.final_equity:,}" in html  # Decimal money, formatted
    assert finished_run.metrics is not None
    assert html.count("<tbody>") >= 1


def test_filters_narrow_the_history(viewer: Client, finished_run: BacktestRun) -> None:
    assert f'href="/runs/{finished_run.pk}"' in page(viewer, "/runs", status="succeeded")
    assert f'href="/runs/{finished_run.pk}"' not in page(viewer, "/runs", status="failed")
    assert "No backtests match" in page(viewer, "/runs", status="failed", fragment="runs")


def test_operators_get_the_start_form_viewers_do_not(
    operator: Client, viewer: Client, sma_version: StrategyVersion
) -> None:
    assert "data-run-form" in page(operator, "/runs") and "Start backtest" in page(
        operator, "/runs"
    )
    assert "data-run-form" not in page(viewer, "/runs")
    assert f'<option value="{sma_version.strategy_id}"' in page(operator, "/runs")


def test_a_succeeded_run_shows_charts_metrics_and_trades(
    viewer: Client, finished_run: BacktestRun
) -> None:
    html = page(viewer, f"/runs/{finished_run.pk}")
    figures = {}
    for script_id in ("figure-equity", "figure-drawdown", "figure-price-0"):
        raw = html.split(f'<script id="{script_id}" type="application/json">')[1].split(
            "</script>"
        )[0]
        figures[script_id] = json.loads(raw)
    equity = figures["figure-equity"]["data"][0]
    assert len(equity["x"]) == len(finished_run.equity_curve or [])
    assert figures["figure-drawdown"]["data"][0]["fill"] == "tozeroy"
    price = figures["figure-price-0"]
    assert price["data"][0]["name"] == "Close" and "SPY" in price["layout"]["title"]["text"]
    assert {t["name"] for t in price["data"][1:]} <= {"Buy", "Sell"}
    assert "Sharpe ratio" in html and "Max drawdown %" in html
    assert f'Trades <small class="muted">({finished_run.total_trades})</small>' in html
    assert 'data-run-final="1"' in html


def test_a_queued_run_shows_its_progress_and_no_charts(
    viewer: Client, sma_version: StrategyVersion
) -> None:
    run = services.backtest_run_create(strategy_version=sma_version, config=BacktestConfig())
    html = page(viewer, f"/runs/{run.pk}")
    assert "Queued" in html and 'data-run-final="0"' in html and "figure-equity" not in html
    BacktestRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, progress=0.42)
    fragment = page(viewer, f"/runs/{run.pk}", fragment="status")
    assert "42% done" in fragment and "<html" not in fragment


def test_a_failed_run_shows_its_error_verbatim(
    viewer: Client, sma_version: StrategyVersion
) -> None:
    run = services.backtest_run_create(strategy_version=sma_version, config=BacktestConfig())
    BacktestRun.objects.filter(pk=run.pk).update(
        status=RunStatus.FAILED, error_message="symbol SPY: no stored bars"
    )
    assert "symbol SPY: no stored bars" in page(viewer, f"/runs/{run.pk}")
    assert "symbol SPY: no stored bars" in page(viewer, "/runs")


def test_a_missing_run_is_404(viewer: Client) -> None:
    assert viewer.get("/runs/999999").status_code == 404

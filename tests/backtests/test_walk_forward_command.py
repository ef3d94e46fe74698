"""``manage.py walk_forward``: a CSV without the database, database bars, ``--save`` through
Celery (in process), ``--async``, and bad input named."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from pytest_django.fixtures import Settings

from backtests import walkforward_tasks
from backtests.models import RunStatus, WalkForwardRun
from research.models import StrategyVersion
from tests.backtests.conftest import ROOT

SMA = str(ROOT / "configs" / "strategies" / "sma_crossover.yaml")
CSV = str(ROOT / "tests" / "backtests" / "data" / "golden_spy_daily.csv")  # 500 daily bars
WINDOWS = ["--in-sample-days", "120", "--out-of-sample-days", "60", "--step-days", "60"]
GRID = ["--grid", "fast=5,10", "--grid", "slow=20,40"]
WINDOW_KEYS = {
    "in_sample_start",
    "in_sample_end",
    "out_of_sample_start",
    "out_of_sample_end",
    "params",
    "in_sample_metrics",
    "out_of_sample_metrics",
    "in_sample_trades",
    "out_of_sample_trades",
    "flag",
}


def run(*args: str) -> str:
    out = StringIO()
    call_command("walk_forward", "--config", SMA, *args, stdout=out)
    return out.getvalue()


def test_csv_run_writes_the_documented_json_and_touches_no_database(tmp_path: Path) -> None:
    out_json, out_html = tmp_path / "wf.json", tmp_path / "wf.html"

    # no django_db mark: pytest-django raises on any database access
    text = run("--csv", CSV, *WINDOWS, *GRID, "--json", str(out_json), "--html", str(out_html))

    report = json.loads(out_json.read_text())
    assert {
        "windows",
        "aggregated_metrics",
        "aggregated_trades",
        "parameter_stability",
        "overfitting",
    } <= set(report)
    assert len(report["windows"]) == 6  # (500 - 120) // 60 windows fit
    for window in report["windows"]:
        assert set(window) >= WINDOW_KEYS
        assert window["in_sample_end"] < window["out_of_sample_start"]
        if window["index"] == 4:  # no grid point trades in this window's 120 bars
            assert window["params"] is None and window["out_of_sample_trades"] is None
            assert window["flag"].startswith("no grid point reached 1 trade(s)")
            continue
        assert set(window["params"]) == {"fast", "slow"} and not window["flag"]
        assert {"sharpe_ratio", "total_trades"} <= set(window["in_sample_metrics"])
        assert window["out_of_sample_trades"] >= 0
    assert report["aggregated_trades"] and "pnl" in report["aggregated_trades"][0]
    assert set(report["parameter_stability"]) == {"fast", "slow"}
    assert {"deflated_sharpe", "pbo", "degradation", "verdict"} <= set(report["overfitting"])
    assert report["walk_forward_config"]["parameter_grid"] == {"fast": [5, 10], "slow": [20, 40]}
    assert out_html.read_text().startswith("<!")
    lines = text.splitlines()
    assert any(line.startswith("5  2022-") for line in lines)  # the last window's row
    assert any(line.startswith("4  2021-") and "FLAGGED" in line for line in lines)
    assert "window 4: no grid point reached 1 trade(s) in sample" in text
    assert "6 window(s), 1 flagged" in text
    assert "verdict: " + report["overfitting"]["verdict"] in text


def test_anchored_windows_start_at_the_first_bar(tmp_path: Path) -> None:
    out = tmp_path / "wf.json"
    run(
        "--csv",
        CSV,
        *WINDOWS,
        "--mode",
        "anchored",
        "--objective",
        "total_return",
        "--json",
        str(out),
    )
    windows = json.loads(out.read_text())["windows"]
    assert {w["in_sample_start"] for w in windows} == {"2021-01-04T00:00:00+00:00"}
    assert json.loads(out.read_text())["walk_forward_config"]["objective"] == "total_return"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grid", "fats=5,10"], r"unknown parameter\(s\) 'fats' \(did you mean 'fast'\?\)"),
        (["--grid", "fast"], "write name=value1,value2"),
        (["--grid", "fast=5", "--grid", "fast=6"], "given twice"),
        (["--grid", "fast=-3"], "invalid value"),
        (["--in-sample-days", "480"], "windows longer than the data: one window needs 540 bars"),
        (["--step-days", "30"], "out-of-sample periods would overlap"),
        (["--save"], "cannot use --csv"),
    ],
)
def test_bad_input_is_named(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run("--csv", CSV, *WINDOWS, *args)


def test_async_needs_save() -> None:
    with pytest.raises(CommandError, match="add --save"):
        run(*WINDOWS, "--async")


def test_no_window_reaching_min_trades_is_flagged_and_refused(tmp_path: Path) -> None:
    out = tmp_path / "wf.json"
    with pytest.raises(CommandError, match="no window reached --min-trades 50 in sample: all 6"):
        run("--csv", CSV, *WINDOWS, *GRID, "--min-trades", "50", "--json", str(out))
    report = json.loads(out.read_text())
    assert all(w["flag"].startswith("no grid point reached 50 trade(s)") for w in report["windows"])
    assert report["aggregated_trades"] == []


@pytest.mark.django_db
def test_database_bars_run_in_process_and_store_nothing(stored_bars: dict[str, int]) -> None:
    text = run(*WINDOWS, *GRID)

    assert "FLAGGED" not in text and "verdict:" in text
    assert not WalkForwardRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_save_runs_through_celery_and_stores_the_run(
    stored_bars: dict[str, int], sma_version: StrategyVersion, settings: Settings, tmp_path: Path
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    out = tmp_path / "wf.json"

    text = run(*WINDOWS, *GRID, "--save", "--json", str(out))

    stored = WalkForwardRun.objects.get()
    assert stored.status == RunStatus.SUCCEEDED and stored.progress == 1.0
    assert f"Walk-forward run {stored.pk} of sma_crossover v1: 4 windows, 20 tasks" in text
    assert "succeeded: 20/20 tasks (100%)" in text
    assert stored.windows.count() == 4
    assert json.loads(out.read_text()) == json.loads(stored.report_json.read())


@pytest.mark.django_db
def test_save_refuses_an_unreviewed_strategy(stored_bars: dict[str, int]) -> None:
    with pytest.raises(CommandError, match="has not been reviewed"):
        run(*WINDOWS, *GRID, "--save")
    assert not WalkForwardRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_save_async_queues_the_run_and_returns(
    stored_bars: dict[str, int], sma_version: StrategyVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[Any] = []

    class Sent:
        id = "task-1"

    def delay(*args: Any) -> Sent:
        sent.append(args)
        return Sent()

    monkeypatch.setattr(walkforward_tasks.wf_start, "delay", delay)

    text = run(*WINDOWS, *GRID, "--save", "--async")

    stored = WalkForwardRun.objects.get()
    assert text.startswith(f"Queued walk-forward run {stored.pk} of sma_crossover v1")
    assert sent == [(stored.pk,)]
    assert stored.status == RunStatus.QUEUED and stored.task_id == "task-1"

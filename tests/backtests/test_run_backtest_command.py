"""``manage.py run_backtest``: database bars, a CSV without the database, ``--save``, bad input."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from backtests.models import BacktestRun, BacktestTrade, RunStatus
from research.models import Strategy
from tests.backtests.conftest import ROOT, reviewed

SMA = str(ROOT / "configs" / "strategies" / "sma_crossover.yaml")
GOLDEN_CSV = ROOT / "tests" / "backtests" / "data" / "golden_spy_daily.csv"
TRADE_KEYS = {
    "symbol",
    "side",
    "quantity",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "commission",
    "pnl",
}


def run(*args: str) -> str:
    out = StringIO()
    call_command("run_backtest", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    if GOLDEN_CSV.exists():
        return GOLDEN_CSV
    from quant.backtest.sample import random_walk_bars

    path = tmp_path / "spy.csv"
    random_walk_bars(300, seed=3, start="2021-01-04").reset_index().rename(
        columns={"ts": "timestamp"}
    ).to_csv(path, index=False)
    return path


def test_csv_run_touches_no_database(csv_file: Path, tmp_path: Path) -> None:
    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"

    # no django_db mark: pytest-django raises on any database access
    text = run(
        "--config",
        SMA,
        "--csv",
        str(csv_file),
        "--json",
        str(out_json),
        "--html",
        str(out_html),
    )

    report = json.loads(out_json.read_text())
    assert {"final_equity", "metrics", "open_positions", "trades"} <= set(report)
    assert report["trades"] and set(report["trades"][0]) >= TRADE_KEYS
    assert report["trades"][0]["commission"] == "2.00"
    assert report["config"]["slippage_bps"] == "10"
    assert "final equity" in text and report["metrics"]["sharpe_ratio"] in text
    assert out_html.read_text().startswith("<!")


def test_flags_reach_the_config(csv_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"

    run(
        "--config", SMA, "--csv", str(csv_file), "--json", str(out),
        "--initial-capital", "50000", "--commission", "0", "--slippage-bps", "0",
        "--start", "2021-03-01", "--end", "2021-12-31", "--mode", "vectorized",
        "--max-volume-participation", "0.0001", "--volume-impact-bps", "20",
    )  # fmt: skip

    report = json.loads(out.read_text())
    assert report["config"]["initial_capital"] == "50000"
    assert report["config"]["commission_per_trade"] == "0"
    assert all(t["commission"] == "0.00" for t in report["trades"])
    assert report["start_time"].startswith("2021-03-01")
    assert report["end_time"] <= "2021-12-31T23:59"
    assert report["metadata"]["engine_mode"] == "vectorized"
    assert report["config"]["max_volume_participation"] == "0.0001"
    assert report["config"]["volume_impact_bps"] == "20"
    fills_per_order: dict[int, int] = {}
    for fill in report["fills"]:
        fills_per_order[fill["order_id"]] = fills_per_order.get(fill["order_id"], 0) + 1
    assert max(fills_per_order.values()) > 1  # 0.01% of the volume: orders fill in parts


@pytest.mark.django_db
def test_database_run_without_save_stores_nothing(stored_bars: dict[str, int]) -> None:
    text = run("--config", SMA)

    assert re.search(rf"^bars\s+{stored_bars['SPY']}$", text, re.MULTILINE)
    assert not BacktestRun.objects.exists() and not Strategy.objects.exists()


@pytest.fixture
def reviewed_sma(db: None) -> None:
    """The shipped sma_crossover config stored and past its review (gate 1)."""
    from quant.strategies.config import config_load
    from research.services import strategy_version_ensure

    version, _ = strategy_version_ensure(config=config_load(Path(SMA)), source="file")
    reviewed(version)


@pytest.mark.django_db
def test_save_refuses_a_strategy_nobody_reviewed(stored_bars: dict[str, int]) -> None:
    with pytest.raises(CommandError, match="has not been reviewed"):
        run("--config", SMA, "--save")

    assert not BacktestRun.objects.exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("reviewed_sma")
def test_save_stores_the_run_with_its_version(stored_bars: dict[str, int], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    text = run("--config", SMA, "--symbol", "QQQ", "--save", "--json", str(out))

    run_row = BacktestRun.objects.get()
    assert f"saved run {run_row.pk}" in text
    assert run_row.status == RunStatus.SUCCEEDED and run_row.symbols == ["QQQ"]
    assert run_row.strategy_version.config["symbols"] == ["SPY"]  # the file's version, unchanged
    assert run_row.report_json and run_row.report_html
    assert BacktestTrade.objects.filter(run=run_row).count() == run_row.total_trades
    assert len(json.loads(out.read_text())["trades"]) == run_row.total_trades


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--csv", "x.csv", "--save"], "cannot use --csv"),
        (["--start", "2021-13-01"], "--start: '2021-13-01' is not a date"),
        (["--commission", "abc"], "--commission: 'abc' is not a number"),
        (["--commission", "-1"], "commission_per_trade: must be a finite number >= 0"),
        (["--start", "2022-01-01", "--end", "2021-01-01"], "is after end_date"),
        (["--csv", "/nonexistent.csv"], "/nonexistent.csv"),
        (["--csv", "CSV", "--symbol", "SPY", "--symbol", "QQQ"], "pick one with --symbol"),
        (["--csv", "CSV", "--start", "2040-01-01"], "no bars for SPY from 2040-01-01"),
    ],
)
def test_bad_input_names_the_problem(args: list[str], message: str, csv_file: Path) -> None:
    args = [str(csv_file) if a == "CSV" else a for a in args]
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        run("--config", SMA, *args)


def test_a_bad_config_names_every_field(tmp_path: Path, csv_file: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nclass: sma_crossover\nsymbols: [SPY]\nparams: {fats: 5, slow: 20}\nsizng: {}\n"
    )

    with pytest.raises(CommandError) as error:
        run("--config", str(bad), "--csv", str(csv_file))

    assert "params.fats: unknown key (did you mean 'fast'?)" in str(error.value)
    assert "sizng: unknown key (did you mean 'sizing'?)" in str(error.value)


@pytest.mark.django_db
def test_a_symbol_without_data_is_named(stored_bars: dict[str, int]) -> None:
    with pytest.raises(CommandError, match="no bars for MSFT"):
        run("--config", SMA, "--symbol", "MSFT")


@pytest.mark.django_db
@pytest.mark.usefixtures("reviewed_sma")
def test_async_queues_a_stored_run(
    stored_bars: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from backtests.tasks import run_backtest

    queued: list[int] = []

    class Sent:
        id = "queued-task"

    def delay(run_id: int) -> Sent:
        queued.append(run_id)
        return Sent()

    monkeypatch.setattr(run_backtest, "delay", delay)
    with django_capture_on_commit_callbacks(execute=True):
        text = run("--config", SMA, "--save", "--async")

    run_row = BacktestRun.objects.get()
    assert f"Queued backtest run {run_row.pk}" in text and queued == [run_row.pk]
    assert run_row.status == RunStatus.QUEUED and run_row.task_id == "queued-task"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--async"], "add --save"),
        (["--save", "--async", "--json", "x.json"], "read its reports from the admin"),
    ],
)
def test_async_needs_save_and_no_report_files(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run("--config", SMA, *args)


def test_a_csv_that_does_not_validate_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-01-02,100,101,99,100.5,1000\n"
        "2024-01-03,100,99,101,100.5,1000\n"  # high below low
    )

    with pytest.raises(CommandError) as error:
        run("--config", SMA, "--csv", str(bad))

    assert "bad.csv" in str(error.value) and "line 3" in str(error.value)

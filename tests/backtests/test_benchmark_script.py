"""benchmarks/backtest_speed.py keeps working (a tiny run of our two paths; numbers not judged)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_backtest_speed_benchmark_runs_and_reports_json() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/backtest_speed.py", "--sizes", "2000", "--skip-peers"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"sizes", "runs", "peers", "trades_identical", "goals", "goals_at_bars"} <= set(figures)
    assert figures["sizes"] == [2000]
    assert figures["peers"] == {}
    assert figures["trades_identical"] is True
    runs = {run["engine"]: run for run in figures["runs"]}
    assert set(runs) == {"event", "vectorized"}
    for run in runs.values():
        assert run["bars"] == 2000
        assert run["seconds"] > 0 and run["bars_per_s"] > 0 and run["peak_mb"] > 0
        assert run["trades"] > 0
        assert run["ratio_vs_backtesting"] is None
    assert set(figures["goals"]) == {
        "vectorized_vs_backtesting",
        "event_vs_backtesting",
        "peak_memory_mb",
    }
    assert figures["goals"]["vectorized_vs_backtesting"]["verdict"] == "n/a"
    assert figures["goals"]["peak_memory_mb"]["verdict"] in ("PASS", "FAIL")
    assert "trades identical: yes" in result.stdout
    assert "| bars | engine | seconds | bars/s |" in result.stdout

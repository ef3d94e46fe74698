"""benchmarks/walk_forward.py keeps working: a 2-window run on 3 years of bars with 1 and 2 real
Celery workers (its timings are not judged here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.fixtures import benchmark_database_url

ROOT = Path(__file__).resolve().parents[2]


def test_the_walk_forward_benchmark_runs_and_reports_json(tmp_path: Path, redis_url: str) -> None:
    url = benchmark_database_url("walk_forward")
    out = tmp_path / "figures.json"
    result = subprocess.run(
        [
            sys.executable,
            "benchmarks/walk_forward.py",
            *("--years", "3", "--windows", "2", "--repeat", "1", "--baseline-repeat", "3"),
            *("--database-url", url, "--redis-url", redis_url, "--json", str(out)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    assert json.loads(out.read_text()) == figures
    assert figures["windows"] == 2 and figures["grid_points"] == 24
    assert figures["backtests"] == 2 * 24 + 2
    assert 700 < figures["bars"] < 800  # three years of exchange sessions
    assert [row["workers"] for row in figures["celery"]] == [1, 2]
    for row in figures["celery"]:
        assert row["wall_s"] > 0 and row["worker_ms_per_backtest"] > 0
    assert figures["celery"][0]["speedup"] == 1.0
    assert figures["single_backtest_s"] > 0 and figures["local_s"] > 0
    assert any(line.startswith("| executor | wall s | backtests/s |") for line in lines)
    assert sum(line.startswith("| Celery, ") for line in lines) == 2
    assert any(line.startswith("speedup with 2 workers ") for line in lines)

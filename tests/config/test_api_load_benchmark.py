"""benchmarks/api_load.py keeps working: a tiny run (its figures are not judged here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.fixtures import benchmark_database_url

ROOT = Path(__file__).resolve().parents[2]


def test_the_api_load_benchmark_runs_and_reports_json() -> None:
    url = benchmark_database_url("api")
    result = subprocess.run(
        [
            sys.executable,
            "benchmarks/api_load.py",
            "--database-url",
            url,
            "--scale",
            "0.01",
            "--clients",
            "4",
            "--seconds",
            "1",
            "--warmup",
            "0.5",
            "--no-saturating",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["counts"]["orders"] == 1000
    assert [p["endpoint"] for p in figures["passes"]] == ["metrics_summary", "positions", "orders"]
    assert all(p["requests"] > 0 and p["errors"] == 0 for p in figures["passes"])
    assert "| `/v1/orders` | bounded |" in result.stdout

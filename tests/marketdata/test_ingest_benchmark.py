"""benchmarks/ingest.py keeps working (a tiny run; its numbers are not judged here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_ingestion_benchmark_runs_and_reports_json() -> None:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        pytest.skip("the benchmark measures PostgreSQL")
    url = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/quant_bench_smoke"
    result = subprocess.run(
        [sys.executable, "benchmarks/ingest.py", "--bars", "3000", "--database-url", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["bars"] >= 3000
    assert (
        figures["service_bars_per_s"] > 0
        and figures["copy_bars_per_s"] > 0
        and figures["ratio"] > 0
    )
    assert "ratio service/COPY" in result.stdout

"""structlog: JSON lines in production with request context; readable lines in a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

REQUEST = """
import django; django.setup()
from django.test import Client
Client().get('/healthz')
import structlog
structlog.get_logger('probe').info('probe.event', answer=42)
"""


def run(env: dict[str, str], tmp_path: Path) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("LOG_FORMAT", "DEBUG", "SECRET_KEY")}
    result = subprocess.run(
        [sys.executable, "-c", REQUEST],
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "VAR_DIR": str(tmp_path),
            "ALLOWED_HOSTS": "testserver",
            **env,
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_production_logs_are_json_with_request_context(tmp_path: Path) -> None:
    lines = run({"DEBUG": "false", "SECRET_KEY": "k" * 50}, tmp_path)
    records = [json.loads(line) for line in lines]
    finished = [r for r in records if r.get("event") == "request_finished"]
    assert finished and finished[0]["request"] == "GET /healthz" and finished[0]["request_id"]
    assert finished[0]["code"] in (200, 503)
    probe = next(r for r in records if r.get("event") == "probe.event")
    assert probe["answer"] == 42 and probe["level"] == "info" and probe["timestamp"].endswith("Z")


def test_terminal_logs_are_readable_lines(tmp_path: Path) -> None:
    lines = run({"DEBUG": "true"}, tmp_path)
    probe = next(line for line in lines if "probe.event" in line)
    assert "answer=42" in probe and not probe.startswith("{")

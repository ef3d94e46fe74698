"""The embedded mode end to end: `manage.py run_platform` on SQLite with no env set.

Starts the real thing (daphne, Celery worker and beat on the filesystem broker) in a
subprocess, waits for /healthz to answer 200, signs in and reads the market data page, stops it with Ctrl-C
(SIGINT) and checks that every child stopped; a second start reuses the data.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.sqlite_smoke


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


COOKIES = CookieJar()
BROWSER = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(COOKIES))


def get(url: str, data: bytes | None = None) -> tuple[int, str]:
    try:
        with BROWSER.open(url, data=data, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def sign_in(var_dir: Path, port: int) -> None:
    """Create a user in the embedded database and sign in at /signin like a browser."""
    script = (
        "from django.contrib.auth.models import User; "
        "User.objects.filter(username='smoke').exists() or "
        "User.objects.create_user('smoke', password='a-long-smoke-password')"
    )
    created = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=embedded_env(var_dir, port),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    status, form = get(f"http://127.0.0.1:{port}/signin")
    assert status == 200 and "Sign in" in form
    token = next(c.value for c in COOKIES if c.name == "csrftoken")
    body = urllib.parse.urlencode(
        {"username": "smoke", "password": "a-long-smoke-password", "csrfmiddlewaretoken": token}
    ).encode()
    status, overview = get(f"http://127.0.0.1:{port}/signin", data=body)
    assert status == 200 and "Overview" in overview and "Sign out" in overview


def embedded_env(var_dir: Path, port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("DATABASE_URL", "REDIS_URL", "CELERY_", "SECRET_KEY", "DEBUG", "TEST_")
        )
    }
    env.update(VAR_DIR=str(var_dir), PORT=str(port), HEALTH_WORKER_MAX_AGE_SECONDS="60")
    return env


def start(var_dir: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_platform"],
        cwd=ROOT,
        env=embedded_env(var_dir, port),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_healthy(
    process: subprocess.Popen[str], port: int, timeout: float = 150
) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    last: tuple[int, str] = (0, "")
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            pytest.fail(f"run_platform exited early with {process.returncode}:\n{output}")
        try:
            last = get(f"http://127.0.0.1:{port}/healthz")
            if last[0] == 200:
                return dict(json.loads(last[1]))
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    pytest.fail(f"/healthz never answered 200; last answer {last}")


def stop(process: subprocess.Popen[str]) -> str:
    children = psutil.Process(process.pid).children(recursive=True)
    assert len(children) >= 3  # web, worker, beat
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"still running after Ctrl-C: {[p.cmdline() for p in alive]}"
    return output


def test_run_platform_serves_demo_data_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    process = start(tmp_path, port)
    try:
        health = wait_healthy(process, port)
        components = health["components"]
        assert isinstance(components, dict)
        assert set(components) == {"database", "job_queue", "worker", "beat", "jobs"}
        status, page = get(f"http://127.0.0.1:{port}/marketdata")
        assert status == 200 and "Sign in" in page  # the dashboard needs a signed-in user
        sign_in(tmp_path, port)
        status, page = get(f"http://127.0.0.1:{port}/marketdata")
        assert status == 200 and "AAPL" in page and "fresh" in page
        assert get(f"http://127.0.0.1:{port}/admin/login/")[0] == 200
        # A job queued on the filesystem broker is picked up and run by the worker.
        queued = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "ingest_bars",
                "--provider",
                "synthetic",
                "--symbols",
                "NVDA",
                "--start",
                "2024-01-01",
                "--end",
                "2024-02-01",
                "--async",
            ],
            cwd=ROOT,
            env=embedded_env(tmp_path, port),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert queued.returncode == 0 and "Queued ingestion job" in queued.stdout, queued.stderr
        deadline = time.monotonic() + 60
        while "<strong>NVDA</strong>" not in page and time.monotonic() < deadline:
            time.sleep(1)
            page = get(f"http://127.0.0.1:{port}/marketdata")[1]
        assert "<strong>NVDA</strong>" in page and "Succeeded" in page
        # A backtest queued the same way runs on the worker and lists its report.
        queued = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "run_backtest",
                "--config",
                "configs/strategies/momentum.yaml",
                "--save",
                "--async",
            ],
            cwd=ROOT,
            env=embedded_env(tmp_path, port),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert queued.returncode == 0 and "Queued backtest run 2" in queued.stdout, queued.stderr
        deadline = time.monotonic() + 90
        while "/backtests/runs/2/report.html" not in page and time.monotonic() < deadline:
            time.sleep(1)
            page = get(f"http://127.0.0.1:{port}/marketdata")[1]
        assert "/backtests/runs/2/report.html" in page and "momentum v1" in page
    finally:
        if process.poll() is None:
            output = stop(process)
    assert "password:" in output and "Stopped." in output
    assert (tmp_path / "quant.sqlite3").exists()

    port = free_port()
    process = start(tmp_path, port)
    try:
        wait_healthy(process, port)
    finally:
        output = stop(process)
    assert "Demo data is up to date" in output and "password:" not in output

"""Real Celery worker processes over a Redis broker, for tests and benchmarks.

``CeleryWorkers(database_url=..., broker_url=...)`` starts ``celery -A config worker`` processes
(one task at a time each, ``--pool=solo``, as ``make run`` starts its worker) on the given
database and broker, waits until every one says it is ready, and stops them all on exit
(``kill()`` kills them instead, as ``kill -9`` would; ``args=("-B",)`` embeds the beat).
Their output goes to a log file, shown when one dies or never becomes ready.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 60.0


class WorkerError(RuntimeError):
    """A worker process died or did not become ready."""


class CeleryWorkers:
    def __init__(
        self,
        *,
        database_url: str,
        broker_url: str,
        count: int = 2,
        name: str = "wf",
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.database_url, self.broker_url, self.count, self.name = (
            database_url,
            broker_url,
            count,
            name,
        )
        self.extra_env = env or {}
        self.extra_args = args
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self._folder = Path(tempfile.mkdtemp(prefix="celery-workers-"))

    @property
    def hostnames(self) -> list[str]:
        return [f"{self.name}{n}@test" for n in range(1, self.count + 1)]

    def __enter__(self) -> CeleryWorkers:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("CELERY_", "REDIS_URL", "DATABASE_URL"))
        }
        env.update(
            DATABASE_URL=self.database_url,
            CELERY_BROKER_URL=self.broker_url,
            LOG_FORMAT="console",
            PYTHONUNBUFFERED="1",
            **self.extra_env,
        )
        for hostname in self.hostnames:
            log = self._folder / f"{hostname.split('@')[0]}.log"
            self.logs.append(log)
            with log.open("wb") as out:
                self.processes.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "celery",
                            "-A",
                            "config",
                            "worker",
                            "--pool=solo",
                            "--loglevel=INFO",
                            "--without-mingle",
                            "--without-gossip",
                            "-n",
                            hostname,
                            *self.extra_args,
                        ],
                        cwd=ROOT,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        deadline = time.monotonic() + READY_TIMEOUT_S
        waiting = set(range(self.count))
        while waiting:
            for n in list(waiting):
                if self.processes[n].poll() is not None:
                    raise WorkerError(f"worker {self.hostnames[n]} exited:\n{self.output(n)}")
                if f"{self.hostnames[n]} ready." in self.output(n):
                    waiting.discard(n)
            if waiting and time.monotonic() > deadline:
                names = ", ".join(self.hostnames[n] for n in sorted(waiting))
                raise WorkerError(
                    f"not ready after {READY_TIMEOUT_S:g} s: {names}\n{self.output()}"
                )
            time.sleep(0.1)

    def check_alive(self) -> None:
        for n, process in enumerate(self.processes):
            if process.poll() is not None:
                raise WorkerError(f"worker {self.hostnames[n]} exited:\n{self.output(n)}")

    def output(self, n: int | None = None) -> str:
        logs = self.logs if n is None else [self.logs[n]]
        return "\n".join(log.read_text(errors="replace") for log in logs if log.exists())

    def kill(self) -> None:
        """``kill -9`` every worker (and its children): no shutdown, nothing acknowledged."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        for process in self.processes:
            process.wait(timeout=10)
        self.processes = []

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL for any worker still there after 15 s."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        self.processes = []

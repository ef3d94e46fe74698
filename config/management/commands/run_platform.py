"""``manage.py run_platform``: the embedded platform in one terminal.

Migrates, seeds demo data, then starts the web server (daphne, ASGI), a Celery worker and
Celery beat as child processes and supervises them: Ctrl-C (or SIGTERM) stops all of them,
and if one dies the others are stopped too, with the name of the one that died.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

STOP_GRACE_SECONDS = 15.0


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None


def platform_children(port: int, host: str) -> list[Child]:
    python = sys.executable
    celery = [python, "-m", "celery", "-A", "config"]
    queue_flags = (
        ["--without-mingle", "--without-gossip"]
        if settings.CELERY_BROKER_URL.startswith("filesystem://")
        else []
    )
    return [
        Child(
            "web", [python, "-m", "daphne", "-b", host, "-p", str(port), "config.asgi:application"]
        ),
        Child(
            "worker",
            [
                *celery,
                "worker",
                "--pool=solo",
                "--loglevel=INFO",
                "--hostname=worker@%h",
                *queue_flags,
            ],
        ),
        Child(
            "beat",
            [
                *celery,
                "beat",
                "--loglevel=INFO",
                "--scheduler",
                settings.CELERY_BEAT_SCHEDULER,
                "--pidfile=",
            ],
        ),
    ]


class Command(BaseCommand):
    help = "Migrate, seed demo data and run web + Celery worker + Celery beat until Ctrl-C."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--no-seed", action="store_true", help="skip the demo data")

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database migrated: " + _database_label())
        if not options["no_seed"]:
            call_command("seed_demo", stdout=self.stdout)
        if not settings.DEBUG:
            call_command("collectstatic", interactive=False, verbosity=0)
        children = platform_children(options["port"], options["host"])
        self._supervise(children, options)

    def _supervise(self, children: list[Child], options: dict[str, Any]) -> None:
        stopping = False

        def request_stop(signum: int, _frame: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        for child in children:
            # Own process group: a terminal Ctrl-C reaches only us, and we stop children in order.
            child.process = subprocess.Popen(child.argv, start_new_session=True)
        url = f"http://{options['host']}:{options['port']}/"
        self.stdout.write(
            self.style.SUCCESS(
                f"\nPlatform running: {url}  (admin: {url}admin/, health: {url}healthz)\n"
                f"Broker: {settings.CELERY_BROKER_URL}. Press Ctrl-C to stop web, worker and beat.\n"
            )
        )
        failed: Child | None = None
        while not stopping:
            for child in children:
                assert child.process is not None
                if child.process.poll() is not None:
                    failed = child
                    stopping = True
                    break
            time.sleep(0.5)
        self.stdout.write("Stopping web, worker and beat...")
        _stop_all(children)
        if failed is not None:
            raise CommandError(
                f"{failed.name} exited with code {failed.process.returncode if failed.process else '?'}; "
                "stopped the others"
            )
        self.stdout.write("Stopped.")


def _stop_all(children: list[Child]) -> None:
    running = [c for c in children if c.process is not None and c.process.poll() is None]
    for child in running:
        assert child.process is not None
        child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in running:
        assert child.process is not None
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()


def _database_label() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"SQLite {db['NAME']}"
    return f"PostgreSQL {db.get('HOST') or 'localhost'}/{db['NAME']}"

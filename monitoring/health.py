"""Health primitives: each component's status, and the checks of the database, the job queue
(broker), the worker and beat heartbeats and Redis. The apps check their own parts
(``trading.health``, ``marketdata.health``); ``config.health`` puts them together."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import connection
from django.utils import timezone

from monitoring.models import ComponentHeartbeat

WORKER = "worker"
BEAT = "beat"


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    healthy: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_database() -> ComponentStatus:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return ComponentStatus("database", True, connection.vendor)
    except Exception as error:
        return ComponentStatus("database", False, f"{type(error).__name__}: {error}")


def check_job_queue(timeout: float = 2.0) -> ComponentStatus:
    """Can a task be handed to the broker right now?"""
    url = settings.CELERY_BROKER_URL
    if url.startswith("filesystem://"):
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
        ok = os.path.isdir(folder) and os.access(folder, os.W_OK)
        return ComponentStatus(
            "job_queue", ok, f"filesystem broker at {folder}" + ("" if ok else " is not writable")
        )
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
        return ComponentStatus("job_queue", True, conn.as_uri())
    except Exception as error:
        return ComponentStatus("job_queue", False, f"broker unreachable: {error}")


def check_heartbeat(
    component: str, max_age: timedelta, now: datetime | None = None
) -> ComponentStatus:
    now = now or timezone.now()
    beat = ComponentHeartbeat.objects.filter(component=component).order_by("-last_seen").first()
    if beat is None:
        return ComponentStatus(component, False, f"no {component} has reported yet")
    age = now - beat.last_seen
    if age > max_age:
        return ComponentStatus(
            component, False, f"{beat.instance} last seen {int(age.total_seconds())} s ago"
        )
    return ComponentStatus(
        component, True, f"{beat.instance} seen {int(age.total_seconds())} s ago"
    )


# Checks of the apps' own parts that /healthz runs too (monitoring imports no app): the shell
# installs them at start-up (``config.wiring``), e.g. the stuck-jobs check.
EXTRA_CHECKS: list[tuple[str, Callable[[], ComponentStatus]]] = []


def platform_health() -> list[ComponentStatus]:
    database = check_database()
    statuses = [database, check_job_queue()]
    if not database.healthy:
        return statuses + [ComponentStatus(c, False, "database down") for c in (WORKER, BEAT)]
    return [
        *statuses,
        check_heartbeat(WORKER, timedelta(seconds=settings.HEALTH_WORKER_MAX_AGE_SECONDS)),
        check_heartbeat(BEAT, timedelta(seconds=settings.HEALTH_BEAT_MAX_AGE_SECONDS)),
        *(_safely(name, check) for name, check in EXTRA_CHECKS),
    ]


def _safely(name: str, check: Callable[[], ComponentStatus]) -> ComponentStatus:
    try:
        return check()
    except Exception as error:  # a broken check is an unhealthy component, never a 500
        return ComponentStatus(name, False, f"check failed: {type(error).__name__}")


def heartbeat_record(
    *, component: str, instance: str | None = None, details: dict[str, Any] | None = None
) -> None:
    ComponentHeartbeat.objects.update_or_create(
        component=component,
        instance=instance or f"{socket.gethostname()}:{os.getpid()}",
        defaults={"last_seen": timezone.now(), "details": details or {}},
    )


class HeartbeatThread(threading.Thread):
    """Records a heartbeat every ``interval`` seconds, even while the process is busy."""

    def __init__(self, instance: str, interval: float = 10.0, component: str = WORKER) -> None:
        super().__init__(name=f"{component}-heartbeat", daemon=True)
        self.component = component
        self.instance = instance
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        from django.db import close_old_connections

        while not self.stopped.is_set():
            try:
                heartbeat_record(component=self.component, instance=self.instance)
            except Exception:  # a locked or restarting database must not kill the worker
                pass
            finally:
                close_old_connections()
            self.stopped.wait(self.interval)


def check_redis(timeout: float = 2.0) -> ComponentStatus:
    """Redis (cache, channel layer, Celery broker) when configured; the embedded mode has none."""
    url = settings.REDIS_URL
    if not url:
        return ComponentStatus("redis", True, "not configured: embedded mode (no Redis needed)")
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        client.ping()
        return ComponentStatus("redis", True, "PONG")
    except Exception as error:
        return ComponentStatus("redis", False, f"unreachable: {error}")

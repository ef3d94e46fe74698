"""Heartbeats: a thread started when a Celery worker is ready (stopped at shutdown) and one
in the Celery beat process, so /healthz sees both even when no task is running."""

from __future__ import annotations

from typing import Any

from celery.signals import beat_init, worker_ready, worker_shutdown

from monitoring.health import BEAT, HeartbeatThread

_threads: list[HeartbeatThread] = []


@worker_ready.connect
def start_heartbeat(sender: Any = None, **_: Any) -> None:
    thread = HeartbeatThread(instance=getattr(sender, "hostname", None) or "worker")
    thread.start()
    _threads.append(thread)


@worker_shutdown.connect
def stop_heartbeat(**_: Any) -> None:
    for thread in _threads:
        thread.stopped.set()


@beat_init.connect
def start_beat_heartbeat(sender: Any = None, **_: Any) -> None:
    import socket

    thread = HeartbeatThread(instance=f"beat@{socket.gethostname()}", component=BEAT)
    thread.start()
    _threads.append(thread)

"""Queueing a job's Celery task: by its registered name (the service that queues a task never
imports the module of the task that calls it back), once the surrounding transaction has
committed (the worker must see the row), and never silently: a broker that refuses the task
fails the job with the reason instead of leaving it "queued" forever.

Each app imports its tasks module when it is ready (``<app>.apps``), so every process (web,
worker, command) has the tasks registered; eager mode (tests) runs them in-process.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from celery import Task, current_app
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

log = structlog.get_logger(__name__)


def task_named(name: str) -> Task:
    """The registered Celery task ``name``."""
    try:
        return current_app.tasks[name]
    except KeyError:
        raise ImproperlyConfigured(
            f"no Celery task named {name!r} is registered: is its app installed?"
        ) from None


def enqueue_on_commit(
    task: str,
    *args: Any,
    queued: Callable[[str], Any],
    failed: Callable[[str], Any],
    what: str = "job",
) -> None:
    """Send task ``task(*args)`` after the commit; ``queued(task_id)`` when the broker took
    it, ``failed(message)`` when it did not ("could not queue the <what>: ...")."""

    def enqueue() -> None:
        try:
            result = task_named(task).delay(*args)
        except ImproperlyConfigured:
            raise
        except Exception as error:  # broker down: say so on the job
            message = f"could not queue the {what}: {type(error).__name__}: {error}"
            log.error("job.enqueue_failed", task=task, args=args, error=str(error))
            failed(message)
            return
        queued(result.id or "")

    transaction.on_commit(enqueue)


# --- liveness: heartbeats and the reaper ----------------------------------------------------
#
# Every long job row (backtest and walk-forward runs, ingestion jobs, model artifacts) has a
# ``heartbeat_at`` and an ``attempts`` column. Queueing stamps it (when the task was sent);
# the worker's claim stamps it and counts an attempt; while the job runs, one thread per
# process stamps every job that process is running, every ``JOB_HEARTBEAT_SECONDS``. A
# process killed with ``kill -9`` takes its thread with it, so the stamps stop: the reaper
# (``jobs_reap``, a beat task every ``JOB_REAP_EVERY_SECONDS``) sees a running job whose
# stamp is older than ``JOB_STALE_AFTER_SECONDS`` and re-queues it, or fails it with the
# reason once ``JOB_MAX_ATTEMPTS`` workers died on it. Each change is a compare-and-swap on
# the stamp it read, so two reapers never act twice on one job, and a worker's claim only
# takes a queued job, so a message delivered twice runs the job once.


class _Beater:
    """The process's heartbeat thread: stamps ``heartbeat_at`` on every job this process is
    running. Started with the first job, ends when the process runs none."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.jobs: Counter[tuple[type[models.Model], int]] = Counter()
        self.thread: threading.Thread | None = None

    def add(self, model: type[models.Model], pk: int) -> None:
        with self.lock:
            self.jobs[(model, pk)] += 1
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self.run, name="job-heartbeat", daemon=True)
                self.thread.start()

    def discard(self, model: type[models.Model], pk: int) -> None:
        with self.lock:
            self.jobs[(model, pk)] -= 1
            if self.jobs[(model, pk)] <= 0:
                del self.jobs[(model, pk)]

    def run(self) -> None:
        from django.db import connections

        while True:
            time.sleep(max(float(settings.JOB_HEARTBEAT_SECONDS), 0.05))
            with self.lock:
                by_model: dict[type[models.Model], list[int]] = {}
                for model, pk in self.jobs:
                    by_model.setdefault(model, []).append(pk)
                if not by_model:
                    self.thread = None
                    return
            try:
                now = timezone.now()
                for model, pks in by_model.items():
                    model._default_manager.filter(pk__in=pks).update(heartbeat_at=now)
            except Exception as error:  # a restarting database must not end the beats
                log.warning("job.heartbeat_failed", error=str(error))
            finally:
                connections.close_all()  # this thread's own connection, never kept idle


_beater = _Beater()


@contextmanager
def job_beating(model: type[models.Model], pk: int) -> Iterator[None]:
    """Keep stamping the job's ``heartbeat_at`` while the block runs in this process.

    Inside a transaction (eager tasks in tests run in the caller's) no thread is started: its
    own connection could not see the job's row, or would wait on the caller's lock."""
    if settings.JOB_HEARTBEAT_SECONDS <= 0 or transaction.get_connection().in_atomic_block:
        yield
        return
    _beater.add(model, pk)
    try:
        yield
    finally:
        _beater.discard(model, pk)


def interrupted(error: BaseException) -> bool:
    """A lost database or broker connection (a restart, a network cut): not the job's fault.
    A job meeting one is left as it is instead of failed; its heartbeat stops with this
    attempt, so the reaper re-queues (or revives) it once the connection is back."""
    from django.db import InterfaceError, OperationalError
    from kombu.exceptions import OperationalError as BrokerError

    return isinstance(error, OperationalError | InterfaceError | BrokerError | ConnectionError)


def stale_before(now: datetime) -> datetime:
    """A running job stamped before this has lost its worker."""
    return now - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS)


@dataclass(frozen=True)
class JobKind:
    """How the reaper sees one kind of job.

    ``queued`` and ``running`` select the kind's waiting and claimed rows; ``requeue`` gives
    the fields that put a running job back in the queue, ``fail`` those that fail it with a
    message, ``cancelled`` (when the kind can be cancelled) those that end a job whose cancel
    was asked for. ``revive``, when set, replaces the re-queue: it is given a stale running
    job and re-sends what it needs (a walk-forward's missing evaluations) and returns how
    many tasks it sent; attempts are then counted per revival instead of per claim."""

    name: str
    model: type[models.Model]
    task: str
    queued: Q
    running: Q
    requeue: Callable[[], dict[str, Any]]
    fail: Callable[[str, datetime], dict[str, Any]]
    cancel_requested: Q | None = None
    cancelled: Callable[[datetime], dict[str, Any]] | None = None
    revive: Callable[[Any], int] | None = None


@dataclass(frozen=True)
class ReapAction:
    kind: str
    job_id: int
    action: str  # requeued, revived, failed, cancelled, resent
    detail: str = ""


def jobs_stuck(
    kinds: Iterable[JobKind], now: datetime | None = None
) -> list[tuple[str, int, datetime]]:
    """Running jobs whose last heartbeat is older than ``JOB_STALE_AFTER_SECONDS``: (kind, id,
    last heartbeat), oldest first."""
    cutoff = stale_before(now or timezone.now())
    stuck: list[tuple[str, int, datetime]] = []
    for kind in kinds:
        rows = kind.model._default_manager.filter(kind.running, heartbeat_at__lt=cutoff)
        stuck += [(kind.name, pk, beat) for pk, beat in rows.values_list("pk", "heartbeat_at")]
    return sorted(stuck, key=lambda row: row[2])


def jobs_reap(kinds: Iterable[JobKind], now: datetime | None = None) -> list[ReapAction]:
    """Re-queue, revive, cancel or fail every running job without a live worker, and send
    again every queued job nobody took for ``JOB_QUEUED_RESEND_SECONDS`` (see above)."""
    now = now or timezone.now()
    kinds = list(kinds)
    cutoff = stale_before(now)
    # Workers busy with other live jobs explain a run's silence: a revival then does not
    # count against its attempts (its tasks are probably waiting in the queue).
    busy = any(
        kind.model._default_manager.filter(kind.running, heartbeat_at__gte=cutoff).exists()
        for kind in kinds
    )
    actions: list[ReapAction] = []
    for kind in kinds:
        manager = kind.model._default_manager
        stale = manager.filter(kind.running, heartbeat_at__lt=cutoff).order_by("pk")
        stale = stale.only("pk", "heartbeat_at", "attempts")
        for job in stale:
            actions.append(_reap_one(kind, job, now, busy))
        resend_cutoff = now - timedelta(seconds=settings.JOB_QUEUED_RESEND_SECONDS)
        waiting = manager.filter(kind.queued, heartbeat_at__lt=resend_cutoff).order_by("pk")
        for pk, beat in waiting.values_list("pk", "heartbeat_at"):
            if manager.filter(kind.queued, pk=pk, heartbeat_at=beat).update(heartbeat_at=now):
                _send_again(kind, pk)
                actions.append(ReapAction(kind.name, pk, "resent", f"queued since {beat:%H:%M:%S}"))
    for action in actions:
        log.warning("job.reaped", kind=action.kind, job_id=action.job_id, action=action.action)
    return actions


def _reap_one(kind: JobKind, job: Any, now: datetime, busy: bool) -> ReapAction:
    manager = kind.model._default_manager
    beat: datetime = job.heartbeat_at
    mine = manager.filter(kind.running, pk=job.pk, heartbeat_at=beat)  # the row as read
    silent = int((now - beat).total_seconds())
    if (
        kind.cancel_requested is not None
        and kind.cancelled is not None
        and mine.filter(kind.cancel_requested).update(**kind.cancelled(now))
    ):
        return ReapAction(kind.name, job.pk, "cancelled", "cancel asked; its worker is gone")
    if job.attempts >= settings.JOB_MAX_ATTEMPTS:
        message = (
            f"its worker stopped answering (no heartbeat for {silent} s) after "
            f"{job.attempts} attempt(s); not retried (JOB_MAX_ATTEMPTS={settings.JOB_MAX_ATTEMPTS})"
        )
        if mine.update(**kind.fail(message, now)):
            return ReapAction(kind.name, job.pk, "failed", message)
        return ReapAction(kind.name, job.pk, "skipped", "changed meanwhile")
    if kind.revive is not None:
        counted = {} if busy else {"attempts": F("attempts") + 1}
        if not mine.update(heartbeat_at=now, **counted):
            return ReapAction(kind.name, job.pk, "skipped", "changed meanwhile")
        sent = kind.revive(job)
        return ReapAction(kind.name, job.pk, "revived", f"{sent} task(s) sent again")
    if not mine.update(heartbeat_at=now, **kind.requeue()):
        return ReapAction(kind.name, job.pk, "skipped", "changed meanwhile")
    _send_again(kind, job.pk)
    return ReapAction(kind.name, job.pk, "requeued", f"no heartbeat for {silent} s")


def _send_again(kind: JobKind, pk: int) -> None:
    try:
        task_named(kind.task).delay(pk)
    except ImproperlyConfigured:
        raise
    except Exception as error:  # broker down: the next pass tries again
        log.error("job.resend_failed", kind=kind.name, job_id=pk, error=str(error))

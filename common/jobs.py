"""Queueing a job's Celery task: by its registered name (the service that queues a task never
imports the module of the task that calls it back), once the surrounding transaction has
committed (the worker must see the row), and never silently: a broker that refuses the task
fails the job with the reason instead of leaving it "queued" forever.

Each app imports its tasks module when it is ready (``<app>.apps``), so every process (web,
worker, command) has the tasks registered; eager mode (tests) runs them in-process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from celery import Task, current_app
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

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

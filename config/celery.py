"""The Celery application: broker from settings (filesystem in embedded mode, Redis otherwise)."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, Task
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("quant")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def recycle_database_connections(sender: Task | None = None, **_: Any) -> None:
    """Around each task, close the connections Django's own policy says to close (older than
    ``CONN_MAX_AGE``, or broken by an error), as Django does around each request.

    Celery's Django fix-up would otherwise close every connection after every task (unless
    ``CELERY_DB_REUSE_MAX`` is set, which the settings do): a new PostgreSQL connection per
    task cost more than the work of a small task. Eager tasks run inside the caller's
    connection and transaction, which are the caller's to manage.
    """
    if sender is None or getattr(sender.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()

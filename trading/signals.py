"""Warm restart: a Celery worker reconciles every trading mode in use before taking tasks
that could place orders (``order_submit`` also reconciles first in any process that has not)."""

from __future__ import annotations

from typing import Any

import structlog
from celery.signals import worker_ready

from trading.tasks import modes_in_use, reconcile_mode

log = structlog.get_logger(__name__)


@worker_ready.connect
def reconcile_on_start(**_: Any) -> None:

    for mode in modes_in_use():
        try:
            reconcile_mode(mode)
        except Exception:  # a broker outage must not keep the worker down; alerts say why
            log.exception("trading.startup_reconcile_failed", mode=mode)

"""Warm restart: a Celery worker reconciles every trading mode in use before taking tasks
that could place orders (``order_submit`` also reconciles first in any process that has not)."""

from __future__ import annotations

from typing import Any

import structlog
from celery.signals import worker_ready

from trading.brokers import broker_for_mode
from trading.services.reconcile import reconcile_modes
from trading.tasks import modes_in_use

log = structlog.get_logger(__name__)


@worker_ready.connect
def reconcile_on_start(**_: Any) -> None:
    """Each mode on its own; a broker outage must not keep the worker down (alerts say why)."""
    try:
        reconcile_modes(modes=modes_in_use(), broker_for=broker_for_mode)
    except Exception:  # the database itself is down: the beat's next pass tries again
        log.exception("trading.startup_reconcile_failed")

"""Live updates of the dashboard over Channels: a changed row tells the "dashboard" group
which topic changed, after its transaction commits; the pages re-fetch that topic's fragments.

Only with the Redis channel layer (``REDIS_URL``): the in-memory layer of the embedded mode
reaches no other process, so the pages poll instead. A channel layer that fails never breaks
the write that triggered it.
"""

from __future__ import annotations

from typing import Any

import structlog
from asgiref.sync import async_to_sync
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from common.dashboard import push_enabled

log = structlog.get_logger(__name__)

GROUP = "dashboard"
MESSAGE_TYPE = "dashboard.changed"

# model label -> topic the pages' fragments listen to
TOPICS = {
    "trading.Order": "orders",
    "trading.Position": "positions",
    "monitoring.Alert": "alerts",
    "risk.KillSwitchState": "killswitch",
    "backtests.BacktestRun": "runs",
    "backtests.WalkForwardRun": "runs",
}


def topic_send(topic: str) -> None:
    """Tell every open dashboard that ``topic`` changed (failures are logged, not raised)."""
    try:
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is None:
            return
        async_to_sync(layer.group_send)(GROUP, {"type": MESSAGE_TYPE, "topic": topic})
    except Exception as error:
        log.warning("dashboard.push_failed", topic=topic, error=f"{type(error).__name__}: {error}")


def _changed(sender: type[Any], **_: Any) -> None:
    if not push_enabled():
        return
    topic = TOPICS.get(sender._meta.label)
    if topic is not None:
        transaction.on_commit(lambda: topic_send(topic), robust=True)


def connect() -> None:
    from django.apps import apps

    for label in TOPICS:
        model = apps.get_model(label)
        post_save.connect(_changed, sender=model, dispatch_uid=f"dashboard-push-save:{label}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"dashboard-push-delete:{label}")

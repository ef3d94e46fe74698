"""The platform's health as ``/v1/health`` and the health page show it: the monitoring
primitives and each app's own checks."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from marketdata.health import check_series_freshness
from monitoring.health import ComponentStatus, check_redis, platform_health
from trading.health import check_broker_connection, live_reconciliation_failing


def platform_health_full(coverage: list[Any] | None = None) -> list[ComponentStatus]:
    """What ``/v1/health`` and the health page show: the core components, Redis, the broker
    connections and data freshness (from ``coverage`` when given)."""
    statuses = platform_health()
    statuses.append(check_redis())
    if statuses[0].healthy:  # the database answers: the rest reads from it
        statuses.append(check_broker_connection("paper"))
        if settings.ALPACA_LIVE_TRADING_ENABLED or live_reconciliation_failing():
            statuses.append(check_broker_connection("live"))
        statuses.append(check_series_freshness(coverage))
    return statuses

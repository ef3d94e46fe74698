"""Health of the trading app's parts: the broker connections, as reconciliation last found them."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.utils import timezone

from monitoring.health import ComponentStatus
from trading.models import ReconciliationRun


def check_broker_connection(mode: str = "paper", now: datetime | None = None) -> ComponentStatus:
    """The broker as the last reconciliation found it (the beat runs one every minute): no
    extra broker call per health request, so polling the page spends no API quota."""
    now = now or timezone.now()
    name = f"broker_{mode}"
    broker = settings.TRADING_BROKER if mode == "paper" else "alpaca"
    last = ReconciliationRun.objects.filter(mode=mode).order_by("-started_at").first()
    if last is None:
        return ComponentStatus(name, mode != "live", f"{broker}: no reconciliation yet")
    age = int((now - last.started_at).total_seconds())
    if last.error:
        return ComponentStatus(name, False, f"{broker}: last reconciliation failed: {last.error}")
    if age > settings.HEALTH_BROKER_MAX_AGE_SECONDS:
        return ComponentStatus(name, False, f"{broker}: last reconciliation {age} s ago")
    state = "matched" if last.matched else f"{len(last.discrepancies or [])} discrepancies"
    return ComponentStatus(name, True, f"{broker}: reconciled {age} s ago ({state})")


def live_reconciliation_failing() -> bool:
    """The last live reconciliation failed (a strategy or order is live while live trading is
    off or its configuration is broken): shown in health even when live trading is off."""
    last = ReconciliationRun.objects.filter(mode="live").order_by("-started_at").first()
    return last is not None and bool(last.error)

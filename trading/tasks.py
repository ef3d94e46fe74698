"""Celery tasks of the trading app: the loop, order polling and reconciliation (beat-driven)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db.models import Q

from quant.clock import SystemClock
from quant.orders.fsm import OPEN_STATUSES
from research.models import Strategy, StrategyMode
from trading.brokers import broker_for_mode
from trading.models import Order, Position
from trading.services.loop import trading_tick_all
from trading.services.reconcile import orders_sync, reconcile


def modes_in_use() -> list[str]:
    """Trading modes with a strategy in them, an open order or a position."""
    modes = set(
        Strategy.objects.filter(mode__in=[StrategyMode.PAPER, StrategyMode.LIVE]).values_list(
            "mode", flat=True
        )
    )
    modes |= set(
        Order.objects.filter(status__in=[s.value for s in OPEN_STATUSES]).values_list(
            "mode", flat=True
        )
    )
    modes |= set(Position.objects.filter(~Q(quantity=0)).values_list("mode", flat=True))
    return sorted(modes)


def reconcile_mode(mode: str) -> dict[str, Any]:

    run = reconcile(mode=mode, broker=broker_for_mode(mode))
    return {
        "mode": mode,
        "matched": run.matched,
        "discrepancies": run.discrepancies,
        "error": run.error,
    }


@shared_task(name="trading.tick", ignore_result=True)
def tick() -> list[dict[str, Any]]:

    return [r.__dict__ for r in trading_tick_all()]


@shared_task(name="trading.poll_orders", ignore_result=True)
def poll_orders() -> int:

    changed = 0
    for mode in set(
        Order.objects.filter(status__in=[s.value for s in OPEN_STATUSES]).values_list(
            "mode", flat=True
        )
    ):
        changed += len(orders_sync(mode=mode, broker=broker_for_mode(mode), clock=_clock()))
    return changed


@shared_task(name="trading.reconcile", ignore_result=True)
def reconcile_all() -> list[dict[str, Any]]:
    return [reconcile_mode(mode) for mode in modes_in_use()]


def _clock() -> Any:

    return SystemClock()

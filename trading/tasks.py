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
from trading.services.reconcile import orders_sync_modes, reconcile_modes


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


@shared_task(name="trading.tick", ignore_result=True)
def tick() -> list[dict[str, Any]]:
    """One pass of the trading loop over every paper and live strategy."""
    return [r.__dict__ for r in trading_tick_all()]


@shared_task(name="trading.poll_orders", ignore_result=True)
def poll_orders() -> int:
    """Bring every open order up to the broker's report, each mode on its own."""
    modes = sorted(
        set(
            Order.objects.filter(status__in=[s.value for s in OPEN_STATUSES]).values_list(
                "mode", flat=True
            )
        )
    )
    return orders_sync_modes(modes=modes, broker_for=broker_for_mode, clock=SystemClock())


@shared_task(name="trading.reconcile", ignore_result=True)
def reconcile_all() -> list[dict[str, Any]]:
    """Reconcile every mode in use against its broker, each on its own: one mode's broken
    configuration never stops another's reconciliation."""
    runs = reconcile_modes(modes=modes_in_use(), broker_for=broker_for_mode)
    return [
        {
            "mode": run.mode,
            "matched": run.matched,
            "discrepancies": run.discrepancies,
            "error": run.error,
        }
        for run in runs
    ]

"""Reconciliation against the broker (spec: every minute) and safe mode.

Each run first brings every open order up to the broker's report (the warm-restart case: an
order whose acknowledgement was lost is looked up by ``client_order_id``), then compares
positions summed over strategies with the broker's positions, and the broker's open orders
with ours. A discrepancy raises a CRITICAL alert and turns safe mode on (no new entries)
for the trading mode; the first clean run afterwards turns it off again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog
from django.db import transaction
from django.db.models import Sum

from monitoring.services import alert_raise_safely
from quant.clock import Clock, SystemClock
from quant.orders.fsm import OPEN_STATUSES
from trading.brokers.base import BrokerClient, BrokerError
from trading.brokers.sync import call
from trading.models import AccountSnapshot, Order, Position, ReconciliationRun, SafeMode
from trading.ports import risk
from trading.services.orders import order_refresh

log = structlog.get_logger(__name__)

# Modes reconciled by this process since it started: no new order before the first one.
_reconciled_here: set[str] = set()


def reconciled_in_process(mode: str) -> bool:
    return mode in _reconciled_here


def forget_process_reconciliation() -> None:
    """Tests: behave like a freshly started process."""
    _reconciled_here.clear()


def orders_sync(*, mode: str, broker: BrokerClient, clock: Clock) -> list[dict[str, Any]]:
    """Refresh every open order of ``mode`` from the broker; returns what changed."""
    changed = []
    for order in Order.objects.filter(mode=mode, status__in=[s.value for s in OPEN_STATUSES]):
        before = (order.status, order.filled_quantity)
        try:
            after = order_refresh(order=order, broker=broker, clock=clock)
        except BrokerError as error:
            log.warning(
                "orders_sync.failed", client_order_id=order.client_order_id, error=str(error)
            )
            continue
        if (after.status, after.filled_quantity) != before:
            changed.append(
                {
                    "client_order_id": order.client_order_id,
                    "from": before[0],
                    "to": after.status,
                    "filled": str(after.filled_quantity),
                }
            )
    return changed


def account_snapshot_take(*, mode: str, broker: BrokerClient, clock: Clock) -> AccountSnapshot:
    account = call(broker.get_account())
    return AccountSnapshot.objects.create(
        mode=mode,
        broker=broker.name,
        equity=account.equity,
        cash=account.cash,
        buying_power=account.buying_power,
        ts=clock.now(),
    )


def reconcile(*, mode: str, broker: BrokerClient, clock: Clock | None = None) -> ReconciliationRun:
    clock = clock or SystemClock()
    run = ReconciliationRun.objects.create(mode=mode, broker=broker.name, started_at=clock.now())
    try:
        run.repaired = orders_sync(mode=mode, broker=broker, clock=clock)
        run.discrepancies = _compare(mode=mode, broker=broker)
        if run.discrepancies:
            # Our books and the broker's are read one after the other: an order filling in
            # between shows as a mismatch gone a moment later (found by the chaos test: safe
            # mode refused entries for a minute). Bring the open orders up to date again and
            # keep only what both comparisons found.
            run.repaired += orders_sync(mode=mode, broker=broker, clock=clock)
            run.discrepancies = _persisting(run.discrepancies, _compare(mode=mode, broker=broker))
        account_snapshot_take(mode=mode, broker=broker, clock=clock)
    except BrokerError as error:
        run.error = f"{type(error).__name__}: {error.message}"
        run.finished_at = clock.now()
        run.save()
        alert_raise_safely(
            source="trading.reconciliation",
            severity="warning",
            message=f"Reconciliation ({mode}) could not reach the broker: {error.message}",
            key=f"trading.reconcile_error.{mode}",
        )
        return run
    run.matched = not run.discrepancies
    run.finished_at = clock.now()
    run.save()
    _reconciled_here.add(mode)
    _safe_mode_update(mode=mode, run=run, now=clock.now())
    risk().reconciled(mode=mode, now=clock.now())
    return run


def reconcile_modes(
    *,
    modes: Iterable[str],
    broker_for: Callable[[str], BrokerClient],
    clock: Clock | None = None,
) -> list[ReconciliationRun]:
    """Reconcile each mode on its own: a mode whose broker cannot be built (a broken
    configuration) or whose reconciliation crashes gets a failed run (health shows it) and an
    alert, and the other modes are reconciled all the same."""
    clock = clock or SystemClock()
    runs = []
    for mode in modes:
        try:
            runs.append(reconcile(mode=mode, broker=broker_for(mode), clock=clock))
        except Exception as error:
            log.exception("reconcile.failed", mode=mode)
            runs.append(_reconcile_failed(mode=mode, error=error, clock=clock))
    return runs


def orders_sync_modes(
    *, modes: Iterable[str], broker_for: Callable[[str], BrokerClient], clock: Clock
) -> int:
    """``orders_sync`` for each mode on its own (a broken mode never stops another's);
    how many orders changed."""
    changed = 0
    for mode in modes:
        try:
            changed += len(orders_sync(mode=mode, broker=broker_for(mode), clock=clock))
        except Exception as error:
            log.exception("orders_sync.mode_failed", mode=mode)
            alert_raise_safely(
                source="trading.reconciliation",
                severity="critical" if mode == "live" else "warning",
                message=f"Order polling ({mode}) cannot run: {_error_text(error)}",
                key=f"trading.poll_error.{mode}",
            )
    return changed


def _reconcile_failed(*, mode: str, error: Exception, clock: Clock) -> ReconciliationRun:
    text = _error_text(error)
    now = clock.now()
    run = ReconciliationRun.objects.create(
        mode=mode, broker="unavailable", started_at=now, finished_at=now, error=text
    )
    alert_raise_safely(
        source="trading.reconciliation",
        severity="critical" if mode == "live" else "warning",
        message=f"Reconciliation ({mode}) cannot run: {text}",
        key=f"trading.reconcile_error.{mode}",
    )
    return run


def _error_text(error: Exception) -> str:
    message = getattr(error, "message", None) or str(error)
    return f"{type(error).__name__}: {message}"


def _compare(*, mode: str, broker: BrokerClient) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = []
    ours: dict[str, Decimal] = defaultdict(Decimal)
    for row in Position.objects.filter(mode=mode).values("symbol").annotate(total=Sum("quantity")):
        ours[row["symbol"]] += row["total"] or Decimal("0")
    theirs = {p.symbol: p.quantity for p in call(broker.get_positions())}
    for symbol in sorted(set(ours) | set(theirs)):
        local, remote = ours.get(symbol, Decimal("0")), theirs.get(symbol, Decimal("0"))
        if local != remote:
            problems.append(
                {"kind": "position", "symbol": symbol, "local": str(local), "broker": str(remote)}
            )
    open_here = {
        o.client_order_id: o
        for o in Order.objects.filter(mode=mode, status__in=[s.value for s in OPEN_STATUSES])
    }
    for remote_order in call(broker.list_open_orders()):
        if remote_order.client_order_id not in open_here:
            known = Order.objects.filter(client_order_id=remote_order.client_order_id).first()
            problems.append(
                {
                    "kind": "broker_order_unknown" if known is None else "order_state",
                    "client_order_id": remote_order.client_order_id,
                    "symbol": remote_order.symbol,
                    "broker_status": remote_order.status.value,
                    "local_status": None if known is None else known.status,
                }
            )
    return problems


def _persisting(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The problems of ``second`` that ``first`` found too (same kind, symbol or order)."""

    def key(problem: dict[str, Any]) -> tuple[Any, ...]:
        return (problem["kind"], problem.get("symbol"), problem.get("client_order_id"))

    seen = {key(problem) for problem in first}
    return [problem for problem in second if key(problem) in seen]


def _safe_mode_update(*, mode: str, run: ReconciliationRun, now: datetime) -> None:
    with transaction.atomic():
        state, _ = SafeMode.objects.select_for_update().get_or_create(mode=mode)
        if run.discrepancies and not state.active:
            summary = "; ".join(_describe(d) for d in run.discrepancies[:5])
            state.active, state.reason, state.since = True, summary, now
            state.save()
            transaction.on_commit(
                lambda: alert_raise_safely(
                    source="trading.reconciliation",
                    severity="critical",
                    message=f"Reconciliation ({mode}) disagrees with the broker: {summary}. "
                    "Safe mode is on: no new entries until it matches again.",
                    key=f"trading.reconcile_mismatch.{mode}",
                )
            )
        elif run.discrepancies:
            state.reason = "; ".join(_describe(d) for d in run.discrepancies[:5])
            state.save(update_fields=["reason"])
        elif state.active:
            state.active, state.reason, state.since = False, "", None
            state.save()
            transaction.on_commit(
                lambda: alert_raise_safely(
                    source="trading.reconciliation",
                    severity="info",
                    message=f"Reconciliation ({mode}) matches the broker again: safe mode is off.",
                    key=f"trading.reconcile_resolved.{mode}",
                )
            )


def _describe(problem: dict[str, Any]) -> str:
    if problem["kind"] == "position":
        return f"{problem['symbol']}: ours {problem['local']} vs broker {problem['broker']}"
    return (
        f"order {problem['client_order_id']} ({problem['kind']}, broker {problem['broker_status']})"
    )


def safe_mode_active(mode: str) -> SafeMode | None:
    return SafeMode.objects.filter(mode=mode, active=True).first()

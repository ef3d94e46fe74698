"""The one entry point that places orders (trading loop, manual orders, flattening)."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

import structlog
from django.conf import settings
from django.db.models import Q

from common.idempotency import Once, created_once, request_fingerprint
from quant.clock import Clock, SystemClock
from quant.errors import (
    ConfigurationError,
    GateClosedError,
    LiveTradingDisabledError,
    ValidationError,
)
from quant.orders.fsm import OPEN_STATUSES, OrderStatus
from research.models import Strategy
from trading.brokers import broker_for_mode
from trading.brokers.base import BrokerClient
from trading.models import Order, OrderSource, Position, TradingMode
from trading.ports import risk
from trading.services.orders import order_cancel, order_create, order_place
from trading.services.reconcile import reconcile, reconciled_in_process

log = structlog.get_logger(__name__)

# Orders that close positions on an operator's or the kill switch's behalf: never gated.
FLATTENING = (OrderSource.KILL_SWITCH, OrderSource.OPERATOR)


def order_submit(
    *,
    strategy: Strategy,
    mode: str | None,
    broker: BrokerClient | None = None,
    symbol: str,
    side: str,
    quantity: Decimal,
    order_type: str = "market",
    limit_price: Decimal | None = None,
    stop_price: Decimal | None = None,
    stop_distance: Decimal | None = None,
    source: str = OrderSource.STRATEGY,
    reason: str = "",
    clock: Clock | None = None,
    sleep: Callable[[float], None] = time.sleep,
    idempotency: tuple[str, str] = ("", ""),
) -> Order:
    """Create, check and send one order; returns it in its state after the broker's answer.

    First the mode gate (``quant.risk.state``): a strategy trades only in a mode it was promoted
    to, and a refusal raises ``GateClosedError`` with nothing stored, for every caller alike
    (API, dashboard, admin, commands, the trading loop). The kill switch, safe mode, a pause
    and the limits are the gateway's: their rejection is stored with the order. The first
    order of a process reconciles with the broker first (warm restart: positions and open
    orders are brought up to date before anything new is sent).
    """
    clock = clock or SystemClock()
    mode = mode or default_mode(strategy)
    if mode not in TradingMode.values:
        raise ValidationError(f"mode: orders are placed in paper or live mode, not {mode!r}")
    state = risk().trading_state(strategy_id=strategy.pk, mode=mode, now=clock.now())
    if state.gate is not None and source not in FLATTENING:  # flattening: the gateway decides
        log.info("order.gate_closed", strategy=strategy.name, mode=mode, reason=state.gate.reason)
        raise GateClosedError(
            state.gate.reason,
            details={
                "strategy_id": strategy.pk,
                "strategy_mode": state.strategy_mode,
                "mode": mode,
            },
        )
    broker = broker or _broker(mode, strategy)
    if not reconciled_in_process(mode):
        reconcile(mode=mode, broker=broker, clock=clock)
    symbol = symbol.upper()
    held = position_quantity(strategy=strategy, mode=mode, symbol=symbol)
    signed = quantity if side == "buy" else -quantity
    opening = held == 0 or (held > 0) == (signed > 0) or abs(signed) > abs(held)
    order = order_create(
        strategy=strategy,
        mode=mode,
        broker=broker.name,
        symbol=symbol,
        side=side,
        quantity=quantity,
        opening=opening,
        source=source,
        order_type=order_type,
        limit_price=limit_price,
        stop_price=stop_price,
        stop_distance=stop_distance,
        reason=reason,
        clock=clock,
        idempotency_key=idempotency[0],
        idempotency_fingerprint=idempotency[1],
    )
    order = order_place(
        order=order, broker=broker, risk=risk().check_order, clock=clock, sleep=sleep
    )
    if order.is_open and source not in FLATTENING:
        after = risk().trading_state(strategy_id=strategy.pk, mode=mode, now=clock.now())
        if after.kill_switch_refusal is not None:
            # Approved just before an activation committed: the activation's cancel sweep may
            # have run before the broker acknowledged it, so cancel it here as well.
            order = order_cancel(order=order, broker=broker, clock=clock, reason="kill switch")
    return order


def order_submit_once(
    *,
    idempotency_key: str,
    strategy: Strategy,
    mode: str | None,
    symbol: str,
    side: str,
    quantity: Decimal,
    order_type: str = "market",
    limit_price: Decimal | None = None,
    stop_distance: Decimal | None = None,
    source: str = OrderSource.MANUAL,
    reason: str = "",
    broker: BrokerClient | None = None,
    clock: Clock | None = None,
) -> Once[Order]:
    """``order_submit`` at most once per ``idempotency_key`` (``common.idempotency``: a
    retry gets the order the first request placed, in its state now, and nothing is sent
    again; the same key with a different order is refused). An order the first request
    stored but never took to the risk check (it died in between) is placed by the retry.
    Without a key, every call places an order."""
    mode = mode or default_mode(strategy)
    fingerprint = request_fingerprint(
        strategy=strategy.pk,
        mode=mode,
        symbol=symbol.upper(),
        side=side,
        quantity=Decimal(quantity).normalize(),
        order_type=order_type,
        limit_price=None if limit_price is None else Decimal(limit_price).normalize(),
        stop_distance=None if stop_distance is None else Decimal(stop_distance).normalize(),
        source=source,
        reason=reason,
    )
    once = created_once(
        Order,
        idempotency_key,
        fingerprint,
        lambda: order_submit(
            strategy=strategy,
            mode=mode,
            broker=broker,
            symbol=symbol,
            side=side,
            quantity=quantity,
            order_type=order_type,
            limit_price=limit_price,
            stop_distance=stop_distance,
            source=source,
            reason=reason,
            clock=clock,
            idempotency=(idempotency_key, fingerprint),
        ),
    )
    order = once.value
    if once.replayed and order.status == OrderStatus.PENDING and order.submit_started_at is None:
        # The first request stored the order, then ended before the risk check (its process
        # was killed, its database connection dropped): its client retries, so carry the
        # placement on. ``order_place`` locks the row and takes only an order nobody has
        # started to send, so a first request still running sends it at most once.
        broker = broker or _broker(order.mode, strategy)
        clock = clock or SystemClock()
        if not reconciled_in_process(order.mode):
            reconcile(mode=order.mode, broker=broker, clock=clock)
        order = order_place(order=order, broker=broker, risk=risk().check_order, clock=clock)
        return Once(order, replayed=True)
    return once


def _broker(mode: str, strategy: Strategy) -> BrokerClient:
    """The mode's broker; a deployment without a live broker (``ALPACA_LIVE_TRADING_ENABLED``
    off, or no keys) refuses a live order with 409 ``live_trading_disabled``, not a 500."""
    try:
        return broker_for_mode(mode)
    except ConfigurationError as error:
        if mode != TradingMode.LIVE:
            raise
        reason = (
            "ALPACA_LIVE_TRADING_ENABLED is off"
            if not settings.ALPACA_LIVE_TRADING_ENABLED
            else error.message
        )
        raise LiveTradingDisabledError(
            f"live trading is not enabled on this deployment ({reason}): nothing was sent",
            details={"strategy_id": strategy.pk, "mode": mode},
        ) from None


def default_mode(strategy: Strategy) -> str:
    """The mode an order of ``strategy`` goes to when none is named: its own trading mode
    (paper for a strategy in research, which the gate then refuses)."""
    return strategy.mode if strategy.mode in TradingMode.values else TradingMode.PAPER.value


def position_quantity(*, strategy: Strategy, mode: str, symbol: str) -> Decimal:
    position = Position.objects.filter(strategy=strategy, mode=mode, symbol=symbol.upper()).first()
    return position.quantity if position else Decimal("0")


def open_orders(*, mode: str | None = None, strategy_id: int | None = None) -> list[Order]:
    query = Q(status__in=[s.value for s in OPEN_STATUSES])
    if mode:
        query &= Q(mode=mode)
    if strategy_id:
        query &= Q(strategy_id=strategy_id)
    return list(Order.objects.filter(query).order_by("created_at"))


def orders_cancel_open(
    *, broker_for: Callable[[str], BrokerClient], strategy_id: int | None = None, reason: str
) -> list[Order]:
    """Cancel every open order (of one strategy, or all): the kill switch's first step."""
    done = []
    for order in open_orders(strategy_id=strategy_id):
        try:
            done.append(order_cancel(order=order, broker=broker_for(order.mode), reason=reason))
        except Exception as error:  # one broker failure must not stop the sweep
            log.error(
                "kill_switch.cancel_failed", client_order_id=order.client_order_id, error=str(error)
            )
    return done


def position_flatten(
    *,
    position: Position,
    broker: BrokerClient,
    source: str = OrderSource.OPERATOR,
    reason: str = "flatten",
    clock: Clock | None = None,
) -> Order | None:
    """A market order that closes the position (None when it is already flat)."""
    position.refresh_from_db()
    if not position.quantity:
        return None
    if (
        position.quantity != position.quantity.to_integral_value()
        and not broker.capabilities.fractional
    ):
        raise ValidationError(f"position {position} is fractional; this broker trades whole shares")
    side = "sell" if position.quantity > 0 else "buy"
    return order_submit(
        strategy=position.strategy,
        mode=position.mode,
        broker=broker,
        symbol=position.symbol,
        side=side,
        quantity=abs(position.quantity),
        source=source,
        reason=reason,
        clock=clock,
    )


def positions_flatten(
    *, broker_for: Callable[[str], BrokerClient], strategy_id: int | None, reason: str
) -> list[Order]:
    placed = []
    positions = Position.objects.exclude(quantity=0).select_related("strategy")
    if strategy_id:
        positions = positions.filter(strategy_id=strategy_id)
    for position in positions:
        try:
            order = position_flatten(
                position=position,
                broker=broker_for(position.mode),
                source=OrderSource.KILL_SWITCH,
                reason=reason,
            )
        except Exception as error:
            log.error("kill_switch.flatten_failed", position=str(position), error=str(error))
            continue
        if order is not None:
            placed.append(order)
    return placed

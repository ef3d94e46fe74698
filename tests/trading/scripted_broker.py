"""An in-memory ``BrokerClient`` for the order-path tests, with faults a test scripts.

It keeps the interface's promises: ``client_order_id`` is unique (a second ``place_order``
with a known id is refused with ``FinalBrokerError``, as Alpaca does), filled quantity, average
price and commission are cumulative, ``updated_at`` grows with every change, and a cancel
succeeds only while the order is open. The "exchange side" (``fill``, ``expire``, ``reject``)
is driven by the test.

Faults are queued per method with ``script``; each call takes the next one:

- ``Fault.BEFORE``: ``RetryableBrokerError`` and nothing happened (the request never arrived);
- ``Fault.AFTER``: the broker did the work, then ``RetryableBrokerError`` (the answer was lost);
- ``Fault.FINAL``: ``FinalBrokerError`` with the scripted message (the broker refuses).

``place_calls`` counts the requests that reached the broker per ``client_order_id`` and
``orders_for`` lists the orders it holds under one: with ``unique_client_ids=False`` the
broker stores a duplicate instead of refusing it, so a double send shows up as two orders.
"""

from __future__ import annotations

import enum
import itertools
import threading
from collections import Counter, deque
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from quant.clock import Clock, ManualClock
from trading.brokers.base import (
    BrokerAccount,
    BrokerClient,
    BrokerOrder,
    BrokerOrderStatus,
    BrokerPosition,
    FinalBrokerError,
    OrderNotFoundError,
    OrderTicket,
    RetryableBrokerError,
)

ZERO = Decimal("0")
AVG_PLACES = Decimal("0.00000001")


class Fault(enum.Enum):
    BEFORE = "retryable, request lost"
    AFTER = "retryable, answer lost"
    FINAL = "final"


@dataclass(frozen=True)
class Scripted:
    fault: Fault
    message: str


class ScriptedBroker(BrokerClient):
    name = "scripted"

    def __init__(self, *, clock: Clock | None = None, unique_client_ids: bool = True) -> None:
        self.clock = clock or ManualClock(datetime(2024, 1, 2, 15, tzinfo=UTC))
        self.unique_client_ids = unique_client_ids
        self.place_calls: Counter[str] = Counter()
        self.calls: list[str] = []  # every method call, in order (faulted ones included)
        self._orders: dict[str, BrokerOrder] = {}  # by broker_order_id, in placing order
        self._faults: dict[str, deque[Scripted | None]] = {}
        self._ids = itertools.count(1)
        self._last_stamp: datetime | None = None
        self._lock = threading.Lock()

    # --- scripting ------------------------------------------------------------------------

    def script(self, method: str, *faults: Fault | None, message: str = "") -> None:
        """Queue faults for the next calls of ``method`` (in order, one per call; None: that
        call goes through)."""
        if not hasattr(BrokerClient, method):
            raise ValueError(f"{method!r} is not a BrokerClient method")
        queue = self._faults.setdefault(method, deque())
        for fault in faults:
            queue.append(
                None if fault is None else Scripted(fault, message or _default_message(fault))
            )

    def pending_faults(self, method: str) -> int:
        return sum(1 for fault in self._faults.get(method, ()) if fault is not None)

    def orders_for(self, client_order_id: str) -> list[BrokerOrder]:
        return [o for o in self._orders.values() if o.client_order_id == client_order_id]

    def order(self, client_order_id: str) -> BrokerOrder:
        (found,) = self.orders_for(client_order_id)
        return found

    # --- the exchange side ----------------------------------------------------------------

    def fill(
        self,
        client_order_id: str,
        quantity: Decimal,
        price: Decimal,
        *,
        commission: Decimal = ZERO,
    ) -> BrokerOrder:
        """Fill ``quantity`` more at ``price``; cumulative quantity, average and commission."""
        with self._lock:
            order = self.order(client_order_id)
            if not order.status.is_open:
                raise AssertionError(f"cannot fill a {order.status.value} order")
            filled = order.filled_quantity + quantity
            if quantity <= 0 or filled > order.quantity:
                raise AssertionError(f"fill of {quantity} does not fit {order}")
            value = order.filled_quantity * (order.filled_avg_price or ZERO) + quantity * price
            status = (
                BrokerOrderStatus.FILLED
                if filled == order.quantity
                else BrokerOrderStatus.PARTIALLY_FILLED
            )
            return self._store(
                order,
                status=status,
                filled_quantity=filled,
                filled_avg_price=(value / filled).quantize(AVG_PLACES),
                commission=order.commission + commission,
            )

    def expire(self, client_order_id: str) -> BrokerOrder:
        with self._lock:
            return self._close(self.order(client_order_id), BrokerOrderStatus.EXPIRED)

    def reject(self, client_order_id: str, reason: str) -> BrokerOrder:
        with self._lock:
            order = self.order(client_order_id)
            return self._close(order, BrokerOrderStatus.REJECTED, reject_reason=reason)

    # --- BrokerClient -----------------------------------------------------------------------

    async def place_order(self, ticket: OrderTicket) -> BrokerOrder:
        with self._lock:
            fault = self._next_fault("place_order")
            if fault is not None and fault.fault is Fault.BEFORE:
                raise RetryableBrokerError(fault.message)
            self.place_calls[ticket.client_order_id] += 1
            if fault is not None and fault.fault is Fault.FINAL:
                raise FinalBrokerError(fault.message)
            if self.unique_client_ids and self.orders_for(ticket.client_order_id):
                raise FinalBrokerError("client_order_id must be unique")
            now = self._stamp()
            order = BrokerOrder(
                broker_order_id=f"B{next(self._ids):04d}",
                client_order_id=ticket.client_order_id,
                symbol=ticket.symbol,
                side=ticket.side,
                quantity=ticket.quantity,
                status=BrokerOrderStatus.NEW,
                order_type=ticket.order_type,
                limit_price=ticket.limit_price,
                stop_price=ticket.stop_price,
                submitted_at=now,
                updated_at=now,
            )
            self._orders[order.broker_order_id] = order
            if fault is not None:  # Fault.AFTER
                raise RetryableBrokerError(fault.message)
            return order

    async def cancel_order(self, broker_order_id: str) -> bool:
        with self._lock:
            fault = self._before("cancel_order")
            order = self._by_broker_id(broker_order_id)
            if not order.status.is_open:
                accepted = False
            else:
                self._close(order, BrokerOrderStatus.CANCELLED)
                accepted = True
            if fault is not None:
                raise RetryableBrokerError(fault.message)
            return accepted

    async def get_order_status(self, broker_order_id: str) -> BrokerOrder:
        with self._lock:
            self._raise_scripted("get_order_status")
            return self._by_broker_id(broker_order_id)

    async def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        with self._lock:
            self._raise_scripted("get_order_by_client_id")
            found = self.orders_for(client_order_id)
            return found[0] if found else None

    async def list_open_orders(self) -> list[BrokerOrder]:
        with self._lock:
            self._raise_scripted("list_open_orders")
            return [o for o in self._orders.values() if o.status.is_open]

    async def get_positions(self) -> list[BrokerPosition]:
        with self._lock:
            self._raise_scripted("get_positions")
            net: dict[str, Decimal] = {}
            for order in self._orders.values():
                signed = order.filled_quantity if order.side == "buy" else -order.filled_quantity
                net[order.symbol] = net.get(order.symbol, ZERO) + signed
            return [
                BrokerPosition(symbol=symbol, quantity=quantity, avg_entry_price=ZERO)
                for symbol, quantity in sorted(net.items())
                if quantity != 0
            ]

    async def get_account(self) -> BrokerAccount:
        with self._lock:
            self._raise_scripted("get_account")
            money = Decimal("100000")
            return BrokerAccount(
                account_id="scripted", equity=money, cash=money, buying_power=money
            )

    # --- internals --------------------------------------------------------------------------

    def _next_fault(self, method: str) -> Scripted | None:
        self.calls.append(method)
        queue = self._faults.get(method)
        return queue.popleft() if queue else None

    def _before(self, method: str) -> Scripted | None:
        """Raise a BEFORE or FINAL fault now; return an AFTER fault for the caller to raise."""
        fault = self._next_fault(method)
        if fault is None or fault.fault is Fault.AFTER:
            return fault
        if fault.fault is Fault.BEFORE:
            raise RetryableBrokerError(fault.message)
        raise FinalBrokerError(fault.message)

    def _raise_scripted(self, method: str) -> None:
        """Reads change nothing, so an AFTER fault is the same as a BEFORE one."""
        if self._before(method) is not None:
            raise RetryableBrokerError(f"{method}: connection reset")

    def _by_broker_id(self, broker_order_id: str) -> BrokerOrder:
        try:
            return self._orders[broker_order_id]
        except KeyError:
            raise OrderNotFoundError(f"order {broker_order_id} not found") from None

    def _close(
        self, order: BrokerOrder, status: BrokerOrderStatus, *, reject_reason: str = ""
    ) -> BrokerOrder:
        if not order.status.is_open:
            raise AssertionError(f"cannot close a {order.status.value} order")
        return self._store(order, status=status, reject_reason=reject_reason)

    def _store(self, order: BrokerOrder, **changes: object) -> BrokerOrder:
        new = replace(order, updated_at=self._stamp(), **changes)  # type: ignore[arg-type]
        self._orders[order.broker_order_id] = new
        return new

    def _stamp(self) -> datetime:
        """The clock's time, but strictly after the previous stamp (reports are ordered)."""
        now = self.clock.now()
        if self._last_stamp is not None and now <= self._last_stamp:
            now = self._last_stamp + timedelta(microseconds=1)
        self._last_stamp = now
        return now


def _default_message(fault: Fault) -> str:
    if fault is Fault.FINAL:
        return "insufficient buying power"
    if fault is Fault.BEFORE:
        return "connection refused"
    return "read timeout"

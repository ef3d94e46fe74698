"""A loopback server that speaks Alpaca's trading REST protocol (orders, positions, account).

Point the real SDK at it: ``TradingClient(key, secret, paper=True, url_override=server.url)``.
It subclasses the market-data ``AlpacaServer`` (same credential check, same error JSON
``{"code": 42210000, "message": ...}``, bars and quotes still served). Routes:

- ``POST /v2/orders``, ``GET /v2/orders``, ``DELETE /v2/orders`` (207, one result per order)
- ``GET /v2/orders/{id}``, ``DELETE /v2/orders/{id}`` (204), ``GET /v2/orders:by_client_order_id``
- ``GET /v2/positions``, ``GET|DELETE /v2/positions/{symbol}``, ``GET /v2/account``

The book (orders, fills, positions, cash) lives in memory behind one lock; tests drive it with
the controls below and read it back. Money and quantities are ``Decimal`` inside and JSON
strings on the wire, as Alpaca sends them.

Fill policy: with ``auto_fill`` (default) a market order fills in full at once at the price
set with ``set_price``; limit and stop orders (and market orders without a price) stay
working until ``fill()``. With ``auto_fill=False`` every order stays ``initial_status``.
Cancels: with ``auto_cancel`` (default) ``DELETE /v2/orders/{id}`` cancels at once, otherwise
the order goes ``pending_cancel`` (fills can still land) until ``confirm_cancel()``.

Faults: ``server.faults`` (see ``tests.support.loopback``) for 429/5xx/resets/slow answers;
``time_out_after_accept()`` stores an order and then loses its answer. Report distortions for
the single-order reads: ``serve_duplicate()`` answers the newest snapshot already served again
(even if the order moved on), ``serve_stale()`` answers an older one.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from tests.support.alpaca_server import AlpacaServer, ParamError, parse_rfc3339
from tests.support.loopback import Fault, Request, Response, rfc3339

SIDES = frozenset({"buy", "sell"})
ORDER_TYPES = frozenset({"market", "limit", "stop", "stop_limit"})
TIMES_IN_FORCE = frozenset({"day", "gtc", "opg", "cls", "ioc", "fok"})
CLOSED_STATUSES = frozenset({"filled", "canceled", "expired", "rejected", "replaced"})
ORDER_STATUSES = CLOSED_STATUSES | {
    "new",
    "accepted",
    "pending_new",
    "accepted_for_bidding",
    "partially_filled",
    "pending_cancel",
    "pending_replace",
    "pending_review",
    "held",
    "calculated",
    "done_for_day",
    "stopped",
    "suspended",
}
DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 500
MAX_CLIENT_ORDER_ID = 128
_SYMBOL = re.compile(r"^[A-Z][A-Z0-9.]{0,15}$")
_ASSET_NAMESPACE = uuid.UUID("6c1f3a52-4b1e-4f0e-9d8e-1f1ea1000000")

Number = Decimal | int | str


def to_decimal(value: Number) -> Decimal:
    """Test-control input as an exact Decimal; floats are refused (they are not exact)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise TypeError(f"use a Decimal, an int or a str, not {type(value).__name__}")
    return Decimal(value)


def wire_number(value: Decimal | None) -> str | None:
    """``Decimal("100.150")`` → ``"100.15"``, as Alpaca writes numbers (JSON strings)."""
    return None if value is None else format(value.normalize(), "f")


def asset_id(symbol: str) -> str:
    return str(uuid.uuid5(_ASSET_NAMESPACE, symbol))


@dataclass
class ServerOrder:
    """One order in the server's book. Test controls hand out copies."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: Decimal
    type: str
    time_in_force: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    extended_hours: bool
    status: str
    created_at: datetime
    updated_at: datetime
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    failed_at: datetime | None = None
    reject_reason: str = ""
    """Kept here for assertions only: Alpaca's order JSON has no field for it."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """Every wire snapshot of the order, oldest first (one per change)."""
    served: int = -1
    """Index in ``history`` of the newest snapshot a client was answered."""

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED_STATUSES

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled_qty

    def wire(self) -> dict[str, Any]:
        """The order as Alpaca's JSON (what ``alpaca.trading.models.Order`` parses)."""
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
            "submitted_at": rfc3339(self.created_at),
            "filled_at": _stamp(self.filled_at),
            "expired_at": _stamp(self.expired_at),
            "canceled_at": _stamp(self.canceled_at),
            "failed_at": _stamp(self.failed_at),
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": asset_id(self.symbol),
            "symbol": self.symbol,
            "asset_class": "us_equity",
            "notional": None,
            "qty": wire_number(self.qty),
            "filled_qty": wire_number(self.filled_qty),
            "filled_avg_price": wire_number(self.filled_avg_price),
            "order_class": "simple",
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "position_intent": None,
            "time_in_force": self.time_in_force,
            "limit_price": wire_number(self.limit_price),
            "stop_price": wire_number(self.stop_price),
            "status": self.status,
            "extended_hours": self.extended_hours,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "expires_at": None,
            "source": None,
            "subtag": None,
        }


@dataclass(frozen=True)
class ServerFill:
    id: str
    order_id: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    at: datetime


@dataclass
class _Position:
    qty: Decimal  # signed
    avg_entry_price: Decimal


@dataclass
class _Distortion:
    kind: str  # "duplicate" | "stale"
    order_id: str | None
    times: int
    versions_back: int = 1


class AlpacaTradingServer(AlpacaServer):
    """Alpaca's trading API on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        *,
        cash: Number = Decimal("100000"),
        auto_fill: bool = True,
        auto_cancel: bool = True,
        initial_status: str = "new",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.auto_fill = auto_fill
        self.auto_cancel = auto_cancel
        self.initial_status = initial_status
        self.unique_client_order_ids = True
        """Refuse a second order under a known client_order_id (Alpaca does). Off: accept it,
        so a test can see through ``orders_for`` that its code sent the same order twice."""
        self.cash = to_decimal(cash)
        self.account_id = str(uuid.uuid4())
        self._lock = threading.RLock()
        self._orders: dict[str, ServerOrder] = {}  # insertion order = submission order
        self._fills: list[ServerFill] = []
        self._positions: dict[str, _Position] = {}
        self._prices: dict[str, Decimal] = {}
        self._distortions: list[_Distortion] = []
        self._served: list[tuple[str, dict[str, Any]]] = []
        self.route("POST", r"/v2/orders", self._post_order)
        self.route("GET", r"/v2/orders", self._list_orders)
        self.route("DELETE", r"/v2/orders", self._cancel_all)
        self.route("GET", r"/v2/orders:by_client_order_id", self._get_by_client_id)
        self.route("GET", r"/v2/orders/(?P<order_id>[^/]+)", self._get_order)
        self.route("DELETE", r"/v2/orders/(?P<order_id>[^/]+)", self._cancel_order)
        self.route("GET", r"/v2/positions", self._list_positions)
        self.route("GET", r"/v2/positions/(?P<symbol>[^/]+)", self._get_position)
        self.route("DELETE", r"/v2/positions/(?P<symbol>[^/]+)", self._close_position)
        self.route("GET", r"/v2/account", self._account)

    # -- test controls: market and book -----------------------------------------------------

    def set_price(self, symbol: str, price: Number) -> None:
        """The price market orders of ``symbol`` fill at; also marks positions to market."""
        with self._lock:
            self._prices[symbol.upper()] = to_decimal(price)

    def set_position(self, symbol: str, qty: Number, avg_entry_price: Number) -> None:
        """Start from a position (signed ``qty``; 0 removes it) without any order."""
        with self._lock:
            amount = to_decimal(qty)
            if amount == 0:
                self._positions.pop(symbol.upper(), None)
            else:
                self._positions[symbol.upper()] = _Position(amount, to_decimal(avg_entry_price))

    def position(self, symbol: str) -> Decimal:
        """Signed quantity held (0 when flat)."""
        with self._lock:
            held = self._positions.get(symbol.upper())
            return held.qty if held else Decimal(0)

    def order(self, order_id: str) -> ServerOrder:
        """A copy of one order (``KeyError`` when unknown)."""
        with self._lock:
            return _copy(self._orders[order_id])

    def orders(self) -> list[ServerOrder]:
        """Copies of every order, in submission order."""
        with self._lock:
            return [_copy(o) for o in self._orders.values()]

    def orders_for(self, client_order_id: str) -> list[ServerOrder]:
        """Every order stored under ``client_order_id``: assert there is exactly one."""
        with self._lock:
            return [_copy(o) for o in self._orders.values() if o.client_order_id == client_order_id]

    def fills(self, order_id: str | None = None) -> list[ServerFill]:
        with self._lock:
            return [f for f in self._fills if order_id is None or f.order_id == order_id]

    # -- test controls: order life cycle ----------------------------------------------------

    def fill(self, order_id: str, qty: Number, price: Number | None = None) -> ServerOrder:
        """Fill ``qty`` more of an open order at ``price`` (default: its limit price, else
        the set price). Cumulative ``filled_qty``/``filled_avg_price``, ``updated_at``,
        the position and cash all move."""
        with self._lock:
            order = self._open_order(order_id)
            amount = to_decimal(qty)
            if not 0 < amount <= order.remaining:
                raise ValueError(f"fill of {amount} on {order.remaining} remaining")
            if price is not None:
                at = to_decimal(price)
            elif order.limit_price is not None:
                at = order.limit_price
            elif order.symbol in self._prices:
                at = self._prices[order.symbol]
            else:
                raise ValueError(f"no price for {order.symbol}: pass price= or set_price()")
            self._apply_fill(order, amount, at)
            return _copy(order)

    def reject(self, order_id: str, reason: str = "rejected by the venue") -> ServerOrder:
        """An open, unfilled order becomes ``rejected``."""
        with self._lock:
            order = self._open_order(order_id)
            if order.filled_qty:
                raise ValueError("a partly filled order cannot be rejected")
            order.reject_reason = reason
            return self._change(order, "rejected", "failed_at")

    def expire(self, order_id: str) -> ServerOrder:
        """An open order becomes ``expired`` (what is filled stays filled)."""
        with self._lock:
            return self._change(self._open_order(order_id), "expired", "expired_at")

    def confirm_cancel(self, order_id: str) -> ServerOrder:
        """A ``pending_cancel`` (or any open) order becomes ``canceled``."""
        with self._lock:
            return self._change(self._open_order(order_id), "canceled", "canceled_at")

    def set_status(self, order_id: str, status: str) -> ServerOrder:
        """Put an order in any Alpaca status (``held``, ``suspended``, ``done_for_day``...)."""
        if status not in ORDER_STATUSES:
            raise ValueError(f"unknown Alpaca order status {status!r}")
        with self._lock:
            return self._change(self._orders[order_id], status, None)

    # -- test controls: faults and distorted reports -----------------------------------------

    def time_out_after_accept(
        self,
        *,
        delay: float = 1.0,
        reset: bool = False,
        status: int | None = None,
        times: int | None = 1,
    ) -> Fault:
        """The next ``POST /v2/orders`` stores the order, then its answer is lost: held back
        ``delay`` seconds (past the client's timeout), or the connection is reset
        (``reset=True``), or it is replaced by an error ``status`` (a 504 from a proxy)."""
        if reset or status is not None:
            return self.faults.add(
                status=status,
                reset=reset,
                times=times,
                path_prefix="/v2/orders",
                method="POST",
                late=True,
            )
        return self.faults.add(
            delay=delay, times=times, path_prefix="/v2/orders", method="POST", late=True
        )

    def serve_duplicate(self, order_id: str | None = None, *, times: int = 1) -> None:
        """The next ``times`` single-order reads (of ``order_id``, or of any order) answer the
        newest snapshot already served again, even if the order has changed since."""
        with self._lock:
            self._distortions.append(_Distortion("duplicate", order_id, times))

    def serve_stale(
        self, order_id: str | None = None, *, times: int = 1, versions_back: int = 1
    ) -> None:
        """The next ``times`` single-order reads answer a snapshot ``versions_back`` versions
        older than the newest one already served (lower filled_qty, older updated_at)."""
        if versions_back < 1:
            raise ValueError("versions_back must be at least 1")
        with self._lock:
            self._distortions.append(_Distortion("stale", order_id, times, versions_back))

    def served(self, order_id: str | None = None) -> list[dict[str, Any]]:
        """Order snapshots answered so far (POST, GET by id, GET by client id), in order."""
        with self._lock:
            return [dict(s) for oid, s in self._served if order_id is None or oid == order_id]

    # -- book internals (callers hold the lock) -----------------------------------------------

    def _open_order(self, order_id: str) -> ServerOrder:
        order = self._orders[order_id]
        if not order.is_open:
            raise ValueError(f"order {order_id} is {order.status}")
        return order

    def _touch(self, order: ServerOrder) -> datetime:
        """A new ``updated_at``, strictly later than the last one (whatever the clock says)."""
        now = self.now()
        if now <= order.updated_at:
            now = order.updated_at + timedelta(microseconds=1)
        order.updated_at = now
        return now

    def _snapshot(self, order: ServerOrder) -> None:
        order.history.append(order.wire())

    def _change(self, order: ServerOrder, status: str, stamp: str | None) -> ServerOrder:
        now = self._touch(order)
        order.status = status
        if stamp:
            setattr(order, stamp, now)
        self._snapshot(order)
        return _copy(order)

    def _apply_fill(self, order: ServerOrder, qty: Decimal, price: Decimal) -> None:
        now = self._touch(order)
        paid = (order.filled_avg_price or Decimal(0)) * order.filled_qty + price * qty
        order.filled_qty += qty
        order.filled_avg_price = paid / order.filled_qty
        if order.filled_qty == order.qty:
            order.status, order.filled_at = "filled", now
        elif order.status != "pending_cancel":  # a cancel in flight stays in flight
            order.status = "partially_filled"
        self._snapshot(order)
        self._fills.append(
            ServerFill(str(uuid.uuid4()), order.id, order.symbol, order.side, qty, price, now)
        )
        signed = qty if order.side == "buy" else -qty
        self.cash -= signed * price
        held = self._positions.get(order.symbol)
        if held is None:
            self._positions[order.symbol] = _Position(signed, price)
            return
        new_qty = held.qty + signed
        if held.qty * signed > 0:  # adding to the position: weighted average entry
            held.avg_entry_price = (held.avg_entry_price * abs(held.qty) + price * qty) / abs(
                new_qty
            )
        elif new_qty * held.qty < 0:  # flipped through zero: the rest opened at this price
            held.avg_entry_price = price
        held.qty = new_qty
        if new_qty == 0:
            del self._positions[order.symbol]

    def _estimated_price(self, symbol: str, limit: Decimal | None, stop: Decimal | None) -> Decimal:
        return limit or stop or self._prices.get(symbol) or Decimal(0)

    def _buying_power(self) -> Decimal:
        """Cash less what open buy orders may still spend (multiplier 1, a cash account)."""
        reserved = sum(
            (
                o.remaining * self._estimated_price(o.symbol, o.limit_price, o.stop_price)
                for o in self._orders.values()
                if o.is_open and o.side == "buy"
            ),
            Decimal(0),
        )
        return self.cash - reserved

    def _mark(self, symbol: str, held: _Position) -> Decimal:
        return self._prices.get(symbol, held.avg_entry_price)

    def _submit(self, params: dict[str, Any]) -> ServerOrder:
        now = self.now()
        order = ServerOrder(
            id=str(uuid.uuid4()),
            status=self.initial_status,
            created_at=now,
            updated_at=now,
            **params,
        )
        self._orders[order.id] = order
        self._snapshot(order)
        price = self._prices.get(order.symbol)
        if self.auto_fill and order.type == "market" and price is not None:
            self._apply_fill(order, order.qty, price)
        return order

    def _report(self, order: ServerOrder) -> dict[str, Any]:
        """The snapshot a single-order read answers, after any queued distortion."""
        index = len(order.history) - 1
        for distortion in self._distortions:
            if distortion.times > 0 and distortion.order_id in (None, order.id):
                distortion.times -= 1
                if distortion.kind == "duplicate" and order.served >= 0:
                    index = order.served
                elif distortion.kind == "stale":
                    index = max(0, max(order.served, 0) - distortion.versions_back)
                break
        self._distortions = [d for d in self._distortions if d.times > 0]
        order.served = max(order.served, index)
        snapshot = dict(order.history[index])
        self._served.append((order.id, snapshot))
        return snapshot

    # -- protocol: orders ---------------------------------------------------------------------

    def _post_order(self, request: Request) -> Response:
        try:
            body = json.loads(request.body or b"null", parse_float=Decimal)
        except ValueError:
            return 400, {}, self.error_body(400, "request body format is invalid")
        if not isinstance(body, dict):
            return 400, {}, self.error_body(400, "request body format is invalid")
        try:
            params = _order_params(body)
        except ParamError as error:
            return self.invalid(str(error))
        with self._lock:
            if self.unique_client_order_ids and any(
                o.client_order_id == params["client_order_id"] for o in self._orders.values()
            ):
                return self.invalid("client_order_id must be unique")
            if params["side"] == "buy":
                price = self._estimated_price(
                    params["symbol"], params["limit_price"], params["stop_price"]
                )
                if params["qty"] * price > self._buying_power():
                    return 403, {}, self.error_body(403, "insufficient buying power")
            order = self._submit(params)
            order.served = len(order.history) - 1
            self._served.append((order.id, dict(order.history[-1])))
            return 200, {}, order.history[-1]

    def _list_orders(self, request: Request) -> Response:
        q = request.query
        status = q.get("status") or "open"
        if status not in ("open", "closed", "all"):
            return self.invalid(f"invalid status: {status!r}")
        direction = q.get("direction") or "desc"
        if direction not in ("asc", "desc"):
            return self.invalid(f"invalid direction: {direction!r}")
        try:
            limit = int(q.get("limit") or DEFAULT_LIST_LIMIT)
            after = parse_rfc3339("after", q["after"]) if q.get("after") else None
            until = parse_rfc3339("until", q["until"]) if q.get("until") else None
        except ValueError as error:
            return self.invalid(str(error) if isinstance(error, ParamError) else "invalid limit")
        if not 1 <= limit <= MAX_LIST_LIMIT:
            return self.invalid(f"invalid limit: must be between 1 and {MAX_LIST_LIMIT}")
        symbols = {s.strip().upper() for s in q.get("symbols", "").split(",") if s.strip()}
        side = q.get("side")
        with self._lock:
            chosen = [
                o
                for o in self._orders.values()
                if (status == "all" or o.is_open == (status == "open"))
                and (not symbols or o.symbol in symbols)
                and (not side or o.side == side)
                and (after is None or o.created_at > after)
                and (until is None or o.created_at < until)
            ]
            if direction == "desc":
                chosen.reverse()
            return 200, {}, [o.history[-1] for o in chosen[:limit]]

    def _get_order(self, request: Request) -> Response:
        with self._lock:
            order = self._orders.get(request.params["order_id"])
            if order is None:
                return self._not_found("order not found")
            return 200, {}, self._report(order)

    def _get_by_client_id(self, request: Request) -> Response:
        client_order_id = request.query.get("client_order_id", "")
        with self._lock:
            found = [o for o in self._orders.values() if o.client_order_id == client_order_id]
            if not found:
                return self._not_found("order not found")
            return 200, {}, self._report(found[-1])

    def _cancel_order(self, request: Request) -> Response:
        with self._lock:
            order = self._orders.get(request.params["order_id"])
            if order is None:
                return self._not_found("order not found")
            if not order.is_open:
                return self.invalid("order is not cancelable")
            self._cancel(order)
            return 204, {}, None

    def _cancel(self, order: ServerOrder) -> None:
        if self.auto_cancel:
            self._change(order, "canceled", "canceled_at")
        elif order.status != "pending_cancel":
            self._change(order, "pending_cancel", None)

    def _cancel_all(self, request: Request) -> Response:
        with self._lock:
            results = []
            for order in [o for o in self._orders.values() if o.is_open]:
                self._cancel(order)
                results.append({"id": order.id, "status": 200, "body": order.history[-1]})
            return 207, {}, results

    # -- protocol: positions and account ---------------------------------------------------------

    def _position_wire(self, symbol: str, held: _Position) -> dict[str, Any]:
        mark = self._mark(symbol, held)
        market_value = held.qty * mark
        cost_basis = held.qty * held.avg_entry_price
        pl = market_value - cost_basis
        return {
            "asset_id": asset_id(symbol),
            "symbol": symbol,
            "exchange": "NASDAQ",
            "asset_class": "us_equity",
            "asset_marginable": True,
            "avg_entry_price": wire_number(held.avg_entry_price),
            "qty": wire_number(held.qty),  # negative for a short, as Alpaca sends it
            "qty_available": wire_number(held.qty),
            "side": "long" if held.qty > 0 else "short",
            "market_value": wire_number(market_value),
            "cost_basis": wire_number(cost_basis),
            "unrealized_pl": wire_number(pl),
            "unrealized_plpc": wire_number(pl / abs(cost_basis)) if cost_basis else "0",
            "unrealized_intraday_pl": wire_number(pl),
            "unrealized_intraday_plpc": wire_number(pl / abs(cost_basis)) if cost_basis else "0",
            "current_price": wire_number(mark),
            "lastday_price": wire_number(mark),
            "change_today": "0",
        }

    def _list_positions(self, request: Request) -> Response:
        with self._lock:
            return 200, {}, [self._position_wire(s, p) for s, p in sorted(self._positions.items())]

    def _get_position(self, request: Request) -> Response:
        symbol = request.params["symbol"].upper()
        with self._lock:
            held = self._positions.get(symbol)
            if held is None:
                return self._not_found("position does not exist")
            return 200, {}, self._position_wire(symbol, held)

    def _close_position(self, request: Request) -> Response:
        """Liquidate with a market order (all of it, or ``qty`` / ``percentage`` of it)."""
        symbol = request.params["symbol"].upper()
        with self._lock:
            held = self._positions.get(symbol)
            if held is None:
                return self._not_found("position does not exist")
            size = abs(held.qty)
            try:
                if request.query.get("qty"):
                    size = Decimal(request.query["qty"])
                elif request.query.get("percentage"):
                    size = size * Decimal(request.query["percentage"]) / 100
            except InvalidOperation:
                return self.invalid("invalid qty or percentage")
            if not 0 < size <= abs(held.qty):
                return self.invalid(f"invalid qty: {size} of {abs(held.qty)} held")
            order = self._submit(
                {
                    "client_order_id": str(uuid.uuid4()),
                    "symbol": symbol,
                    "side": "sell" if held.qty > 0 else "buy",
                    "qty": size,
                    "type": "market",
                    "time_in_force": "day",
                    "limit_price": None,
                    "stop_price": None,
                    "extended_hours": False,
                }
            )
            return 200, {}, order.history[-1]

    def _account(self, request: Request) -> Response:
        with self._lock:
            longs = sum(
                (p.qty * self._mark(s, p) for s, p in self._positions.items() if p.qty > 0),
                Decimal(0),
            )
            shorts = sum(
                (p.qty * self._mark(s, p) for s, p in self._positions.items() if p.qty < 0),
                Decimal(0),
            )
            equity = self.cash + longs + shorts
            buying_power = max(self._buying_power(), Decimal(0))
            return (
                200,
                {},
                {
                    "id": self.account_id,
                    "account_number": "PA" + self.account_id.replace("-", "")[:10].upper(),
                    "status": "ACTIVE",
                    "crypto_status": "ACTIVE",
                    "currency": "USD",
                    "cash": wire_number(self.cash),
                    "buying_power": wire_number(buying_power),
                    "regt_buying_power": wire_number(buying_power),
                    "non_marginable_buying_power": wire_number(buying_power),
                    "equity": wire_number(equity),
                    "last_equity": wire_number(equity),
                    "portfolio_value": wire_number(equity),
                    "long_market_value": wire_number(longs),
                    "short_market_value": wire_number(shorts),
                    "initial_margin": "0",
                    "maintenance_margin": "0",
                    "last_maintenance_margin": "0",
                    "sma": "0",
                    "multiplier": "1",
                    "accrued_fees": "0",
                    "pending_transfer_in": "0",
                    "pending_transfer_out": "0",
                    "pattern_day_trader": False,
                    "trading_blocked": False,
                    "transfers_blocked": False,
                    "account_blocked": False,
                    "trade_suspended_by_user": False,
                    "shorting_enabled": True,
                    "created_at": "2024-01-02T14:30:00Z",
                },
            )

    def _not_found(self, message: str) -> Response:
        return 404, {}, self.error_body(404, message)


def _stamp(moment: datetime | None) -> str | None:
    return rfc3339(moment) if moment else None


def _copy(order: ServerOrder) -> ServerOrder:
    return replace(order, history=list(order.history))


def _decimal(body: dict[str, Any], name: str) -> Decimal | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ParamError(f"invalid {name}: {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ParamError(f"invalid {name}: {value!r}") from None
    if not number.is_finite() or number <= 0:
        raise ParamError(f"{name} must be > 0")
    return number


def _decimal_places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _choice(body: dict[str, Any], name: str, allowed: Iterable[str]) -> str:
    value = body.get(name)
    if value not in set(allowed):
        raise ParamError(f"invalid {name}: {value!r}" if value else f"{name} is required")
    return str(value)


def _order_params(body: dict[str, Any]) -> dict[str, Any]:
    """Alpaca's validation of a new simple order; the ``ServerOrder`` fields it sets."""
    symbol = str(body.get("symbol") or "").upper()
    if not symbol:
        raise ParamError("symbol is required")
    if not _SYMBOL.match(symbol):
        raise ParamError(f"asset {symbol!r} not found")
    if body.get("order_class") not in (None, "", "simple"):
        raise ParamError("only simple orders are supported")
    if body.get("notional") is not None:
        raise ParamError("notional orders are not supported")
    qty = _decimal(body, "qty")
    if qty is None:
        raise ParamError("qty is required")
    side = _choice(body, "side", SIDES)
    order_type = _choice(body, "type", ORDER_TYPES)
    time_in_force = _choice(body, "time_in_force", TIMES_IN_FORCE)
    limit_price = _decimal(body, "limit_price")
    stop_price = _decimal(body, "stop_price")
    if order_type in ("limit", "stop_limit") and limit_price is None:
        raise ParamError(f"limit_price is required for {order_type} orders")
    if order_type in ("stop", "stop_limit") and stop_price is None:
        raise ParamError(f"stop_price is required for {order_type} orders")
    if order_type in ("market", "stop") and limit_price is not None:
        raise ParamError(f"limit_price must not be set for {order_type} orders")
    for name, price in (("limit_price", limit_price), ("stop_price", stop_price)):
        if price is not None and _decimal_places(price) > (2 if price >= 1 else 4):
            raise ParamError(
                f"invalid {name} {price}. sub-penny increment does not fulfill minimum"
                " pricing criteria"
            )
    if qty != qty.to_integral_value() and time_in_force != "day":
        raise ParamError("fractional orders must be DAY orders")
    client_order_id = body.get("client_order_id") or str(uuid.uuid4())
    if not isinstance(client_order_id, str) or len(client_order_id) > MAX_CLIENT_ORDER_ID:
        raise ParamError(f"client_order_id must be no more than {MAX_CLIENT_ORDER_ID} characters")
    return {
        "client_order_id": client_order_id,
        "symbol": symbol,
        "side": side,
        "qty": qty,
        "type": order_type,
        "time_in_force": time_in_force,
        "limit_price": limit_price,
        "stop_price": stop_price,
        "extended_hours": bool(body.get("extended_hours", False)),
    }

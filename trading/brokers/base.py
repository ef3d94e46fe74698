"""The broker interface every adapter implements (spec section 5), and its values and errors.

Adapters speak in these values only; the order service (``trading.services``) owns the order
state machine and the database. Money and quantities are ``Decimal``.

Required methods: ``place_order``, ``cancel_order``, ``get_order_status``,
``get_order_by_client_id``, ``list_open_orders``, ``get_positions``, ``get_account``.
A capability difference between venues is data (``BrokerCapabilities``), not an ``if``.

Errors: ``RetryableBrokerError`` (429, 5xx, timeouts, connection resets: the request may or
may not have reached the broker; look the order up by ``client_order_id`` before retrying),
``FinalBrokerError`` (the broker refused: invalid order, insufficient buying power, duplicate
``client_order_id``...), ``OrderNotFoundError`` (the broker does not know the order).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from quant.errors import ApplicationError


class BrokerError(ApplicationError):
    code = "broker_error"
    http_status = 502


class RetryableBrokerError(BrokerError):
    """The outcome is unknown or temporary (429, 5xx, timeout, reset): safe to look up and retry."""

    code = "broker_unavailable"
    http_status = 503

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message, details=dict(details or {}))
        self.retry_after = retry_after


class FinalBrokerError(BrokerError):
    """The broker refused the request; retrying the same request cannot succeed."""

    code = "broker_rejected"
    http_status = 422


class OrderNotFoundError(BrokerError):
    code = "broker_order_not_found"
    http_status = 404


class BrokerOrderStatus(enum.StrEnum):
    """A broker's order states, reduced to what the order state machine needs."""

    NEW = "new"  # accepted, working, nothing filled yet
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_open(self) -> bool:
        return self in (BrokerOrderStatus.NEW, BrokerOrderStatus.PARTIALLY_FILLED)


@dataclass(frozen=True)
class OrderTicket:
    """What we ask the broker to do. ``client_order_id`` makes the request idempotent."""

    client_order_id: str
    symbol: str
    side: str  # "buy" | "sell"
    quantity: Decimal
    order_type: str = "market"  # "market" | "limit" | "stop"
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str = "day"  # "day" | "gtc"


@dataclass(frozen=True)
class BrokerOrder:
    """The broker's view of one order at one moment.

    ``filled_quantity`` and ``filled_avg_price`` are cumulative; fills are derived from their
    increase (``trading.services``), so a repeated or stale report changes nothing.
    ``updated_at`` orders reports of the same order: an older one must never undo a newer one.
    """

    broker_order_id: str
    client_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    status: BrokerOrderStatus
    filled_quantity: Decimal = Decimal("0")
    filled_avg_price: Decimal | None = None
    order_type: str = "market"
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    submitted_at: datetime | None = None
    updated_at: datetime | None = None
    reject_reason: str = ""
    commission: Decimal = Decimal("0")  # cumulative commission charged on the filled part


@dataclass(frozen=True)
class BrokerPosition:
    symbol: str
    quantity: Decimal  # signed: > 0 long, < 0 short
    avg_entry_price: Decimal
    market_value: Decimal | None = None


@dataclass(frozen=True)
class BrokerAccount:
    account_id: str
    equity: Decimal
    cash: Decimal
    buying_power: Decimal
    status: str = "ACTIVE"
    trading_blocked: bool = False
    currency: str = "USD"


@dataclass(frozen=True)
class BrokerCapabilities:
    order_types: frozenset[str] = field(default_factory=lambda: frozenset({"market", "limit"}))
    supports_short: bool = True
    fractional: bool = False


class BrokerClient(ABC):
    """Async interface of a broker (spec section 5). Implementations must be safe to call
    from any thread's event loop (``asyncio.run`` in a Celery task, for example)."""

    name: str = "broker"
    capabilities: BrokerCapabilities = BrokerCapabilities()

    @abstractmethod
    async def place_order(self, ticket: OrderTicket) -> BrokerOrder:
        """Send a new order. Raises ``FinalBrokerError`` if the broker refuses it (a duplicate
        ``client_order_id`` included) and ``RetryableBrokerError`` if the outcome is unknown."""

    @abstractmethod
    async def cancel_order(self, broker_order_id: str) -> bool:
        """Ask the broker to cancel. True if the cancel was accepted, False if the order is
        no longer cancellable (already filled, cancelled...)."""

    @abstractmethod
    async def get_order_status(self, broker_order_id: str) -> BrokerOrder:
        """The broker's current report of one order (raises ``OrderNotFoundError``)."""

    @abstractmethod
    async def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        """The order the broker holds under ``client_order_id``, or None if it never got it."""

    @abstractmethod
    async def list_open_orders(self) -> list[BrokerOrder]:
        """Every order the broker still works (reconciliation)."""

    @abstractmethod
    async def get_positions(self) -> list[BrokerPosition]:
        """Current positions (signed quantities)."""

    @abstractmethod
    async def get_account(self) -> BrokerAccount:
        """Equity, cash, buying power."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (optional)."""

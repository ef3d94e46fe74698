"""``SimulatedBroker``: the embedded default broker for paper trading.

Orders go to a simulated venue (``trading.venue``) whose book lives in the database, so the
web, worker and beat processes all see one venue. Orders fill on the backtest's fill model
(``ExecutionSimulator``, driven by ``trading.venue.matching``) against finished bars of
``marketdata.Bar`` (``trading.venue.prices``). The venue works orders lazily: whenever it is
asked anything it first catches up to the clock's now, under a row lock on the account.

Threads: the interface is async, the venue is Django ORM code. Each call runs the ORM work
through ``sync_to_async(thread_sensitive=True)``: under ``asyncio.run`` (Celery tasks,
management commands) that is asgiref's one shared sync thread, under ``async_to_sync`` or an
async Django view the caller's sync thread. The venue commits its own transaction before the
call returns, so a caller outside ``transaction.atomic`` sees the result at once. A connection
the call had to open is closed again (nothing lingers in asgiref's thread; a reconnect costs a
few milliseconds per call), a caller's connection is left alone, a stale one is replaced first,
and a database that cannot be reached is a ``RetryableBrokerError``: the outcome is unknown,
look the order up.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar, overload

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from quant.backtest.config import BacktestConfig
from quant.clock import Clock, SystemClock
from quant.errors import ConfigurationError, ValidationError
from trading.brokers.base import (
    BrokerAccount,
    BrokerCapabilities,
    BrokerClient,
    BrokerOrder,
    BrokerOrderStatus,
    BrokerPosition,
    OrderTicket,
    RetryableBrokerError,
)
from trading.venue import services as venue
from trading.venue.models import VenueOrder
from trading.venue.prices import DatabasePriceSource, PriceSource

T = TypeVar("T")

__all__ = [
    "DatabasePriceSource",
    "PriceSource",
    "SimulatedBroker",
    "simulated_broker_from_settings",
]


class SimulatedBroker(BrokerClient):
    """A broker that fills on the backtest fill model, with its book in the database."""

    name = "simulated"
    capabilities = BrokerCapabilities(
        order_types=frozenset({"market", "limit", "stop"}), supports_short=True, fractional=False
    )

    def __init__(
        self,
        *,
        account: str = "paper",
        config: BacktestConfig | None = None,
        latency: timedelta = timedelta(0),
        clock: Clock | None = None,
        prices: PriceSource | None = None,
        starting_cash: Decimal = Decimal("100000"),
    ) -> None:
        if latency < timedelta(0):
            raise ValidationError(f"latency must not be negative, got {latency}")
        if starting_cash <= 0:
            raise ValidationError(f"starting_cash must be positive, got {starting_cash}")
        clock = clock or SystemClock()
        self.clock = clock
        self.venue = venue.Venue(
            account=account,
            config=config or BacktestConfig(),
            latency=latency,
            clock=clock,
            prices=prices or DatabasePriceSource(clock=clock),
            starting_cash=Decimal(starting_cash),
            order_types=self.capabilities.order_types,
        )

    async def place_order(self, ticket: OrderTicket) -> BrokerOrder:
        order = await _db(venue.venue_order_place, venue=self.venue, ticket=ticket)
        return order_report(order)

    async def cancel_order(self, broker_order_id: str) -> bool:
        return await _db(
            venue.venue_order_cancel, venue=self.venue, broker_order_id=broker_order_id
        )

    async def get_order_status(self, broker_order_id: str) -> BrokerOrder:
        order = await _db(venue.venue_order_get, venue=self.venue, broker_order_id=broker_order_id)
        return order_report(order)

    async def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        order = await _db(
            venue.venue_order_by_client_id, venue=self.venue, client_order_id=client_order_id
        )
        return order_report(order) if order is not None else None

    async def list_open_orders(self) -> list[BrokerOrder]:
        orders = await _db(venue.venue_open_orders, venue=self.venue)
        return [order_report(order) for order in orders]

    async def get_positions(self) -> list[BrokerPosition]:
        positions = await _db(venue.venue_positions, venue=self.venue)
        return [
            BrokerPosition(
                symbol=p.symbol,
                quantity=p.quantity,
                avg_entry_price=p.avg_price,
                market_value=p.quantity * p.mark if p.mark is not None else None,
            )
            for p in positions
        ]

    async def get_account(self) -> BrokerAccount:
        account = await _db(venue.venue_account, venue=self.venue)
        return BrokerAccount(
            account_id=account.name,
            equity=account.equity,
            cash=account.cash,
            buying_power=account.buying_power,
        )


def order_report(order: VenueOrder) -> BrokerOrder:
    """The venue's order as a broker reports it (cumulative filled quantity and commission)."""
    return BrokerOrder(
        broker_order_id=order.broker_order_id,
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=order.side,
        quantity=order.quantity,
        status=BrokerOrderStatus(order.status),
        filled_quantity=order.filled_qty,
        filled_avg_price=order.filled_avg_price,
        order_type=order.order_type,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        submitted_at=order.created_at,
        updated_at=order.updated_at,
        reject_reason=order.reject_reason,
        commission=order.commission,
    )


async def _db(function: Callable[..., T], **kwargs: Any) -> T:
    return await sync_to_async(_in_db_thread, thread_sensitive=True)(function, kwargs)


def _in_db_thread(function: Callable[..., T], kwargs: dict[str, Any]) -> T:
    """Run venue code, leaving this thread's connection as it was found: a connection opened
    here (asgiref's shared thread under ``asyncio.run``) is closed again, a caller's is kept."""
    if not connection.in_atomic_block:  # never touch a caller's open transaction
        connection.close_if_unusable_or_obsolete()
    opened_here = connection.connection is None
    try:
        return function(**kwargs)
    except (OperationalError, InterfaceError) as error:
        raise RetryableBrokerError(
            f"the simulated venue's database is unavailable: {error}"
        ) from error
    finally:
        if opened_here and not connection.in_atomic_block:
            connection.close()


SETTING_OF_FIELD = {
    "initial_capital": "PAPER_STARTING_CASH",
    "slippage_bps": "PAPER_SLIPPAGE_BPS",
    "commission_per_trade": "PAPER_COMMISSION",
    "max_volume_participation": "PAPER_MAX_VOLUME_PARTICIPATION",
}


def simulated_broker_from_settings() -> SimulatedBroker:
    """The paper broker configured by the ``PAPER_*`` settings (see quant/settings.py)."""
    latency_ms = getattr(settings, "PAPER_LATENCY_MS", 0)
    if not isinstance(latency_ms, int) or latency_ms < 0:
        raise ConfigurationError(
            f"PAPER_LATENCY_MS must be a whole number >= 0, got {latency_ms!r}"
        )
    starting_cash = _setting_decimal("PAPER_STARTING_CASH", Decimal("100000"))
    try:
        config = BacktestConfig(
            initial_capital=starting_cash,
            slippage_bps=_setting_decimal("PAPER_SLIPPAGE_BPS", Decimal("10")),
            commission_per_trade=_setting_decimal("PAPER_COMMISSION", Decimal("1.00")),
            max_volume_participation=_setting_decimal("PAPER_MAX_VOLUME_PARTICIPATION", None),
        )
    except ValidationError as error:
        message = error.message.removeprefix("backtest config: ")
        for field, setting in SETTING_OF_FIELD.items():
            message = message.replace(f"{field}:", f"{setting}:")
        raise ConfigurationError(f"paper trading settings: {message}") from error
    return SimulatedBroker(
        config=config, latency=timedelta(milliseconds=latency_ms), starting_cash=starting_cash
    )


@overload
def _setting_decimal(name: str, default: Decimal) -> Decimal: ...
@overload
def _setting_decimal(name: str, default: None) -> Decimal | None: ...
def _setting_decimal(name: str, default: Decimal | None) -> Decimal | None:
    """A ``PAPER_*`` number setting as an exact Decimal; ``default`` when unset or empty."""
    value = getattr(settings, name, None)
    if value is None or value == "":
        return default
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ConfigurationError(f"{name} must be a number, got {value!r}") from None
    if not number.is_finite():
        raise ConfigurationError(f"{name} must be a finite number, got {value!r}")
    return number

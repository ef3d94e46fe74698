"""Support for the operator tests (admin actions, management commands): a strategy in a trading
mode, daily prices the risk gateway can check against, and a small in-memory broker.

``InstantBroker``: market orders fill at once at ``price``; limit orders rest until cancelled. Positions are the
sum of the fills, plus whatever a test puts in ``extra_positions`` to make reconciliation
disagree. ``refuse`` lists symbols the broker rejects, and ``down`` makes every call fail as if
the broker were unreachable.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from marketdata.domain import BarRecord, Timeframe
from marketdata.services import bars_ingest
from quant.strategies.config import config_validate
from research.models import Strategy, StrategyMode
from research.services import strategy_review_builtin, strategy_version_ensure
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


def trading_strategy(name: str = "ops_sma", mode: str = StrategyMode.PAPER) -> Strategy:
    """A reviewed sma_crossover strategy on SPY put straight into ``mode`` (the gates have
    their own tests)."""
    config = config_validate(
        {
            "name": name,
            "class": "sma_crossover",
            "symbols": ["SPY"],
            "params": {"fast": 3, "slow": 8},
        }
    )
    version, _ = strategy_version_ensure(config=config, source="file")
    strategy_review_builtin(strategy=version.strategy, note="test")
    Strategy.objects.filter(pk=version.strategy_id).update(mode=mode)
    return Strategy.objects.get(pk=version.strategy_id)


def daily_prices(symbol: str = "SPY", price: str = "100", days: int = 30) -> None:
    """``days`` flat daily bars up to yesterday: a last price and a liquid ADV for the gateway."""
    today = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    px = Decimal(price)
    bars = [
        BarRecord(
            symbol=symbol,
            timeframe=Timeframe.DAY_1,
            ts=today - timedelta(days=days - i),
            open=px,
            high=px,
            low=px,
            close=px,
            volume=Decimal(5_000_000),
        )
        for i in range(days)
    ]
    bars_ingest(symbol=symbol, timeframe=Timeframe.DAY_1, bars=bars, source="test")


class InstantBroker(BrokerClient):
    name = "instant"

    def __init__(self, *, price: Decimal = Decimal("100")) -> None:
        self.price = price
        self.orders: dict[str, BrokerOrder] = {}  # by broker_order_id
        self.extra_positions: dict[str, Decimal] = {}
        self.refuse: set[str] = set()
        self.down = False
        self.cancelled: list[str] = []
        self._ids = itertools.count(1)

    def _check(self) -> None:
        if self.down:
            raise RetryableBrokerError("connection refused")

    async def place_order(self, ticket: OrderTicket) -> BrokerOrder:
        self._check()
        if ticket.symbol in self.refuse:
            raise FinalBrokerError(f"asset {ticket.symbol} is not tradable")
        filled = ticket.order_type == "market"
        order = BrokerOrder(
            broker_order_id=f"I{next(self._ids)}",
            client_order_id=ticket.client_order_id,
            symbol=ticket.symbol,
            side=ticket.side,
            quantity=ticket.quantity,
            status=BrokerOrderStatus.FILLED if filled else BrokerOrderStatus.NEW,
            filled_quantity=ticket.quantity if filled else ZERO,
            filled_avg_price=self.price if filled else None,
            order_type=ticket.order_type,
            limit_price=ticket.limit_price,
            updated_at=datetime.now(UTC),
        )
        self.orders[order.broker_order_id] = order
        return order

    async def cancel_order(self, broker_order_id: str) -> bool:
        self._check()
        order = await self.get_order_status(broker_order_id)
        if not order.status.is_open:
            return False
        self.orders[broker_order_id] = replace(
            order, status=BrokerOrderStatus.CANCELLED, updated_at=datetime.now(UTC)
        )
        self.cancelled.append(order.client_order_id)
        return True

    async def get_order_status(self, broker_order_id: str) -> BrokerOrder:
        self._check()
        if broker_order_id not in self.orders:
            raise OrderNotFoundError(f"order {broker_order_id} not found")
        return self.orders[broker_order_id]

    async def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        self._check()
        found = [o for o in self.orders.values() if o.client_order_id == client_order_id]
        return found[0] if found else None

    async def list_open_orders(self) -> list[BrokerOrder]:
        self._check()
        return [o for o in self.orders.values() if o.status.is_open]

    async def get_positions(self) -> list[BrokerPosition]:
        self._check()
        net = dict(self.extra_positions)
        for order in self.orders.values():
            signed = order.filled_quantity if order.side == "buy" else -order.filled_quantity
            net[order.symbol] = net.get(order.symbol, ZERO) + signed
        return [
            BrokerPosition(symbol=symbol, quantity=quantity, avg_entry_price=self.price)
            for symbol, quantity in sorted(net.items())
            if quantity
        ]

    async def get_account(self) -> BrokerAccount:
        self._check()
        money = Decimal("100000")
        return BrokerAccount(account_id="instant", equity=money, cash=money, buying_power=money)

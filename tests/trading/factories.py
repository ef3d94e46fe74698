"""Building blocks of the trading tests: a paper strategy, prices, an account snapshot, and a
thread-safe broker double that accepts every order (for gateway and concurrency tests)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
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
)
from trading.models import AccountSnapshot


def paper_strategy(
    name: str = "paper_sma", symbols: tuple[str, ...] = ("SPY",), **config: object
) -> Strategy:
    """A reviewed sma_crossover strategy put straight into paper mode (the gates have their own tests)."""
    data: dict[str, object] = {
        "name": name,
        "class": "sma_crossover",
        "symbols": list(symbols),
        "params": {"fast": 3, "slow": 8},
    }
    data.update(config)
    version, _ = strategy_version_ensure(config=config_validate(data), source="file")
    strategy = version.strategy
    strategy_review_builtin(strategy=strategy, note="test")
    Strategy.objects.filter(pk=strategy.pk).update(mode=StrategyMode.PAPER)
    strategy.refresh_from_db()
    return strategy


def flat_prices(
    symbol: str,
    *,
    price: str = "100",
    volume: int = 5_000_000,
    days: int = 30,
    end: datetime | None = None,
) -> None:
    """``days`` daily bars at a constant price ending yesterday (or at ``end``)."""
    last = (
        (end or timezone.now()).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    )
    px = Decimal(price)
    bars = [
        BarRecord(
            symbol=symbol,
            timeframe=Timeframe.DAY_1,
            ts=last - timedelta(days=days - i),
            open=px,
            high=px,
            low=px,
            close=px,
            volume=Decimal(volume),
        )
        for i in range(days)
    ]
    bars_ingest(symbol=symbol, timeframe=Timeframe.DAY_1, bars=bars, source="test")


def account(
    mode: str = "paper", equity: str = "100000", cash: str | None = None
) -> AccountSnapshot:
    return AccountSnapshot.objects.create(
        mode=mode,
        broker="test",
        equity=Decimal(equity),
        cash=Decimal(cash or equity),
        buying_power=Decimal(cash or equity),
        ts=timezone.now(),
    )


class AcceptingBroker(BrokerClient):
    """Holds every order as NEW (thread-safe); refuses a duplicate client_order_id."""

    name = "accepting"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.orders: dict[str, BrokerOrder] = {}
        self.by_client: dict[str, str] = {}
        self.placed: Counter[str] = Counter()
        self.cancelled: list[str] = []
        self.equity = Decimal("100000")

    async def place_order(self, ticket: OrderTicket) -> BrokerOrder:
        with self._lock:
            if ticket.client_order_id in self.by_client:
                raise FinalBrokerError("client_order_id must be unique")
            now = datetime.now(UTC)
            order = BrokerOrder(
                broker_order_id=uuid.uuid4().hex,
                client_order_id=ticket.client_order_id,
                symbol=ticket.symbol,
                side=ticket.side,
                quantity=ticket.quantity,
                status=BrokerOrderStatus.NEW,
                submitted_at=now,
                updated_at=now,
            )
            self.orders[order.broker_order_id] = order
            self.by_client[ticket.client_order_id] = order.broker_order_id
            self.placed[ticket.client_order_id] += 1
            return order

    async def cancel_order(self, broker_order_id: str) -> bool:
        with self._lock:
            order = self.orders.get(broker_order_id)
            if order is None:
                raise OrderNotFoundError(broker_order_id)
            if not order.status.is_open:
                return False
            self.orders[broker_order_id] = BrokerOrder(
                **{
                    **order.__dict__,
                    "status": BrokerOrderStatus.CANCELLED,
                    "updated_at": datetime.now(UTC),
                }
            )
            self.cancelled.append(order.client_order_id)
            return True

    async def get_order_status(self, broker_order_id: str) -> BrokerOrder:
        with self._lock:
            if broker_order_id not in self.orders:
                raise OrderNotFoundError(broker_order_id)
            return self.orders[broker_order_id]

    async def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        with self._lock:
            broker_id = self.by_client.get(client_order_id)
            return self.orders[broker_id] if broker_id else None

    async def list_open_orders(self) -> list[BrokerOrder]:
        with self._lock:
            return [o for o in self.orders.values() if o.status.is_open]

    async def get_positions(self) -> list[BrokerPosition]:
        return []

    async def get_account(self) -> BrokerAccount:
        return BrokerAccount("test", self.equity, self.equity, self.equity)

"""Fixtures for the trading app: a strategy to own orders, a manual clock, the scripted broker,
an order factory over ``order_create``, risk gates for ``order_place`` and ``rolled_back`` for
hypothesis examples that write rows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import pytest
from django.db import transaction

from quant.clock import Clock, ManualClock
from quant.risk.values import RiskVerdict
from research.models import Strategy
from research.services import strategy_version_ensure
from tests.backtests.conftest import sma_config
from tests.trading.scripted_broker import ScriptedBroker
from trading.models import Order
from trading.services.orders import RiskGate, order_create

START = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
def strategy(db: None) -> Strategy:
    version, _ = strategy_version_ensure(config=sma_config(), source="file")
    return version.strategy


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def broker(clock: ManualClock) -> ScriptedBroker:
    return ScriptedBroker(clock=clock)


class MakeOrder(Protocol):
    def __call__(self, **changes: Any) -> Order: ...


@pytest.fixture
def make_order(strategy: Strategy, clock: ManualClock) -> MakeOrder:
    """A PENDING order through ``order_create``: buy 10 SPY at market, paper, scripted broker."""

    def make(**changes: Any) -> Order:
        fields: dict[str, Any] = {
            "strategy": strategy,
            "mode": "paper",
            "broker": ScriptedBroker.name,
            "symbol": "SPY",
            "side": "buy",
            "quantity": Decimal("10"),
            "opening": True,
            "clock": clock,
        }
        fields.update(changes)
        return order_create(**fields)

    return make


def approve_at(price: str | Decimal = "100") -> RiskGate:
    """A risk gate that approves every order with ``price`` as the reference price."""

    def gate(order: Order, clock: Clock) -> RiskVerdict:
        return RiskVerdict(True, reference_price=Decimal(price))

    return gate


def reject_with(reason: str, *, check: str = "test") -> RiskGate:
    def gate(order: Order, clock: Clock) -> RiskVerdict:
        return RiskVerdict(False, reason=reason, check=check, reference_price=Decimal("100"))

    return gate


class _Rollback(Exception):
    pass


@contextmanager
def rolled_back() -> Iterator[None]:
    """Undo every row written inside: for hypothesis examples, which share one function-scoped
    ``db`` fixture (and so one test transaction) between them."""
    try:
        with transaction.atomic():
            yield
            raise _Rollback
    except _Rollback:
        pass

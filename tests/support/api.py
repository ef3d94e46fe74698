"""Helpers of the API tests: a user per role, authenticated clients and a small trading world."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from common.auth import Principal, Role, principal_for, token_issue

ROLES = ("viewer", "operator", "admin")
PASSWORD = "correct horse battery staple"


@pytest.fixture
def paper_broker() -> Iterator[Any]:
    """Paper orders go to an in-memory broker double, not the SimulatedBroker: the venue
    writes on a connection of its own, which would commit outside the test's transaction."""
    from tests.trading.factories import AcceptingBroker
    from trading.brokers import broker_override
    from trading.services.reconcile import forget_process_reconciliation

    broker = AcceptingBroker()
    forget_process_reconciliation()
    broker_override("paper", broker)
    yield broker
    broker_override("paper", None)
    forget_process_reconciliation()


def make_user(role: str, username: str | None = None) -> User:
    user = User.objects.create_user(username or f"{role}_user", password=PASSWORD)
    if role in ("operator", "admin"):
        group, _ = Group.objects.get_or_create(name=role)
        user.groups.add(group)
    return user


def bearer(user: User, kind: str = "access") -> str:
    principal = principal_for(user.pk)
    assert isinstance(principal, Principal)
    return token_issue(principal, kind)


def client_for(user: User | None) -> Client:
    """A test client that sends the user's access token (no token for None)."""
    if user is None:
        return Client()
    return Client(headers={"Authorization": f"Bearer {bearer(user)}"})


def role_users() -> dict[str, User]:
    return {role: make_user(role) for role in ROLES}


def role_rank(role: str | None) -> int:
    return 0 if role is None else int(Role[role.upper()])


@dataclass
class World:
    strategy: Any
    positions: list[Any]
    orders: list[Any]
    run: Any
    alert: Any


def trading_world(*, positions: int = 3, orders: int = 5, prices: bool = True) -> World:
    """A paper strategy with open positions, orders with fills, account snapshots over 40
    days, a finished backtest run and an alert."""
    from backtests.models import BacktestRun, BacktestTrade, RunStatus
    from monitoring.services import alert_raise
    from tests.trading.factories import flat_prices, paper_strategy
    from trading.models import AccountSnapshot, Fill, Order, Position

    now = timezone.now()
    symbols = tuple(f"S{i:03d}" for i in range(max(positions, 1)))
    strategy = paper_strategy("api_sma", symbols=("SPY",))
    if prices:
        flat_prices("SPY", price="100")
    made_positions = [
        Position.objects.create(
            strategy=strategy,
            mode="paper",
            symbol=symbol,
            quantity=Decimal(10 + i),
            avg_price=Decimal("95.5"),
            realized_pnl=Decimal("12.25"),
            last_fill_at=now,
        )
        for i, symbol in enumerate(symbols[:positions])
    ]
    made_orders = []
    for i in range(orders):
        order = Order.objects.create(
            strategy=strategy,
            mode="paper",
            broker="simulated",
            client_order_id=f"{strategy.pk}-api-{i}",
            broker_order_id=f"b-{i}",
            symbol="SPY",
            side="buy" if i % 2 == 0 else "sell",
            quantity=Decimal("10"),
            filled_quantity=Decimal("10"),
            avg_fill_price=Decimal("100"),
            opening=i % 2 == 0,
            source="strategy",
            status="filled",
            created_at=now - timedelta(days=i),
        )
        Fill.objects.create(
            order=order,
            broker_fill_id=f"b-{i}:10",
            strategy=strategy,
            mode="paper",
            symbol="SPY",
            side=order.side,
            quantity=Decimal("10"),
            price=Decimal("100") + i,
            commission=Decimal("1"),
            closed_quantity=Decimal("0") if i % 2 == 0 else Decimal("10"),
            realized_pnl=Decimal("-1") if i % 2 == 0 else Decimal(20 if i % 4 == 1 else -10),
            ts=now - timedelta(days=i),
        )
        made_orders.append(order)
    for day in range(40, -1, -1):
        AccountSnapshot.objects.create(
            mode="paper",
            broker="simulated",
            equity=Decimal(100_000 + (40 - day) * 100 - (500 if day == 10 else 0)),
            cash=Decimal("50000"),
            buying_power=Decimal("50000"),
            ts=now - timedelta(days=day, minutes=1),
        )
    run = BacktestRun.objects.create(
        strategy=strategy,
        strategy_version=strategy.current_version,  # type: ignore[misc]
        status=RunStatus.SUCCEEDED,
        progress=1.0,
        strategy_config=strategy.current_version.config,  # type: ignore[union-attr]
        backtest_config={"initial_capital": "100000"},
        symbols=["SPY"],
        timeframe="1Day",
        metrics={"sharpe_ratio": "1.2", "total_return_pct": "4.5"},
        final_equity=Decimal("104500"),
        total_trades=1,
        equity_curve=[{"ts": now.isoformat(), "equity": 104500.0}],
        open_positions=[],
        finished_at=now,
    )
    BacktestTrade.objects.create(
        run=run,
        seq=1,
        symbol="SPY",
        side="long",
        quantity=Decimal("10"),
        entry_time=now - timedelta(days=3),
        entry_price=Decimal("100"),
        exit_time=now,
        exit_price=Decimal("104"),
        commission=Decimal("2"),
        pnl=Decimal("38"),
        bars_held=3,
    )
    alert = alert_raise(severity="warning", source="tests", message="Disk almost full", key="disk")
    return World(strategy, made_positions, made_orders, run, alert)

"""The whole gate path: a strategy is reviewed, backtested, promoted to paper by a second
user, and then trades on the SimulatedBroker from the Celery task that beat schedules."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from backtests.services import backtest_run_create, backtest_run_execute
from marketdata.domain import Timeframe
from marketdata.services import bars_ingest
from quant.backtest import BacktestConfig
from quant.calendar import MarketCalendar
from quant.clock import ManualClock
from quant.strategies.config import config_validate
from research.models import Strategy
from research.services import strategy_version_ensure
from risk import approvals
from tests.support.fixtures import make_bars
from trading.brokers import broker_override
from trading.brokers.simulated import SimulatedBroker
from trading.models import Fill, Order, Position
from trading.services.reconcile import forget_process_reconciliation

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_process() -> Iterator[None]:
    forget_process_reconciliation()
    yield
    forget_process_reconciliation()
    broker_override("paper", None)


def test_a_strategy_promoted_through_the_gates_trades_from_beat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trading.tasks import tick

    alice = User.objects.create_user("alice", is_staff=True)
    bob = User.objects.create_user("bob", is_staff=True)
    bars = make_bars("SPY", Timeframe.DAY_1, datetime(2023, 1, 3, tzinfo=UTC), 80)
    history, live = bars[:40], bars[40:]
    bars_ingest(symbol="SPY", timeframe=Timeframe.DAY_1, bars=history, source="test")
    config = config_validate(
        {
            "name": "gated",
            "class": "sma_crossover",
            "symbols": ["SPY"],
            "params": {"fast": 3, "slow": 8},
        }
    )
    version, _ = strategy_version_ensure(config=config, source="file")
    strategy = version.strategy

    approvals.approval_decide(
        approval=approvals.approval_request(strategy=strategy, kind="strategy_review", user=alice),
        user=bob,
        approve=True,
    )
    run = backtest_run_create(strategy_version=version, config=BacktestConfig())
    assert backtest_run_execute(run_id=run.pk).run.status == "succeeded"
    tick.apply().get()
    assert not Order.objects.exists(), "a research strategy must not trade"
    approvals.approval_decide(
        approval=approvals.approval_request(strategy=strategy, kind="promote_paper", user=bob),
        user=alice,
        approve=True,
    )
    assert Strategy.objects.get(pk=strategy.pk).mode == "paper"

    calendar = MarketCalendar()
    clock = ManualClock(calendar.session_close(history[-1].ts.date()) + timedelta(minutes=1))
    broker_override("paper", SimulatedBroker(clock=clock))
    monkeypatch.setattr("trading.services.loop.SystemClock", lambda: clock)
    assert settings.CELERY_BEAT_SCHEDULE["trading-tick"]["task"] == tick.name
    for bar in live:  # a new bar arrives after each close; beat's task picks it up
        bars_ingest(symbol="SPY", timeframe=Timeframe.DAY_1, bars=[bar], source="test")
        clock.set(calendar.session_close(bar.ts.date()) + timedelta(minutes=1))
        tick.apply().get()

    fills = Fill.objects.filter(strategy=strategy)
    assert fills.count() >= 2
    assert all(
        o.submit_started_at for o in Order.objects.filter(strategy=strategy, status="filled")
    )
    position = Position.objects.get(strategy=strategy, symbol="SPY")
    signed = sum(f.quantity if f.side == "buy" else -f.quantity for f in fills)
    assert position.quantity == signed

"""The trading loop end to end: bars → strategy → gateway → broker → fills → positions.

One code path: the paper strategy's fills fall on the same bars, sides and prices as a
backtest of the same strategy over the same bars (sizes differ: paper orders are capped by
the order-level risk limits). The loop runs on the SimulatedBroker and on the real alpaca-py
client against the loopback Alpaca server, through the Celery task that beat schedules.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from django.conf import settings

from marketdata.domain import BarRecord, Timeframe
from marketdata.services import bars_ingest
from quant.backtest import BacktestConfig, BacktestEngine, MarketData
from quant.calendar import MarketCalendar
from quant.clock import ManualClock
from research.models import Strategy
from risk import services as risk_services
from tests.support.alpaca_trading import AlpacaTradingServer
from tests.support.fixtures import make_bars
from tests.trading.factories import paper_strategy
from trading.brokers import broker_override
from trading.brokers.alpaca import AlpacaBroker
from trading.brokers.base import BrokerClient
from trading.brokers.simulated import SimulatedBroker
from trading.models import Fill, Order, Position, StrategyRuntime
from trading.services.loop import TickResult, strategy_tick
from trading.services.reconcile import forget_process_reconciliation, orders_sync

pytestmark = pytest.mark.django_db(transaction=True)

START = datetime(2023, 1, 3, tzinfo=UTC)
CALENDAR = MarketCalendar()


@pytest.fixture(autouse=True)
def fresh_process() -> Iterator[None]:
    forget_process_reconciliation()
    yield
    forget_process_reconciliation()
    broker_override("paper", None)


def after_close(ts: datetime) -> datetime:
    return CALENDAR.session_close(ts.date()) + timedelta(minutes=1)


def stored(symbol: str, count: int) -> list[BarRecord]:
    bars = make_bars(symbol, Timeframe.DAY_1, START, count)
    bars_ingest(symbol=symbol, timeframe=Timeframe.DAY_1, bars=bars, source="test")
    return bars


def run_days(
    strategy: Strategy, broker: BrokerClient, clock: ManualClock, bars: list[BarRecord], first: int
) -> list[TickResult]:
    results = []
    for bar in bars[first:]:
        clock.set(after_close(bar.ts))
        strategy.refresh_from_db()
        results.append(strategy_tick(strategy=strategy, broker=broker, clock=clock))
        orders_sync(mode="paper", broker=broker, clock=clock)
    return results


def backtest_fills(strategy: Strategy, bars: list[BarRecord]) -> list[tuple[datetime, str, float]]:
    frame = pd.DataFrame(
        {
            "open": [float(b.open) for b in bars],
            "high": [float(b.high) for b in bars],
            "low": [float(b.low) for b in bars],
            "close": [float(b.close) for b in bars],
            "volume": [float(b.volume) for b in bars],
        },
        index=pd.DatetimeIndex([b.ts for b in bars]),
    )
    assert strategy.current_version is not None
    config = strategy.current_version.as_config()
    result = BacktestEngine().run(
        config.build(), MarketData.from_frames({"SPY": frame}), BacktestConfig()
    )
    return [(f.ts, f.side, float(f.price)) for f in result.fills]


def test_paper_trading_fills_where_the_backtest_fills(settings_: None = None) -> None:
    bars = stored("SPY", 90)
    strategy = paper_strategy(params={"fast": 3, "slow": 8})
    clock = ManualClock(after_close(bars[30].ts))
    broker = SimulatedBroker(clock=clock)

    results = run_days(strategy, broker, clock, bars, first=30)

    fills = list(Fill.objects.filter(strategy=strategy).order_by("ts", "id"))
    assert len(fills) >= 4, [r.orders for r in results]
    expected = {(ts, side): price for ts, side, price in backtest_fills(strategy, bars)}
    for fill in fills:
        signal_bar = max(b.ts for b in bars if b.ts <= fill.ts)
        key = (signal_bar, fill.side)
        assert key in expected, f"paper fill {fill} has no backtest fill on {signal_bar}"
        assert float(fill.price) == pytest.approx(expected[key], rel=1e-9)
    # Every order passed the gateway, every fill is booked once, the position is their sum.
    position = Position.objects.get(strategy=strategy, symbol="SPY")
    signed = sum((f.quantity if f.side == "buy" else -f.quantity for f in fills), Decimal("0"))
    assert position.quantity == signed
    assert all(
        o.submit_started_at for o in Order.objects.filter(strategy=strategy, status="filled")
    )
    assert max(
        o.quantity * o.reference_price for o in Order.objects.filter(strategy=strategy)
    ) <= Decimal("25000")
    runtime = StrategyRuntime.objects.get(strategy=strategy, mode="paper")
    assert runtime.last_bar_ts == bars[-1].ts and runtime.last_daily_close == bars[-1].ts.date()


def test_a_tick_without_a_new_bar_does_nothing(settings_: None = None) -> None:
    bars = stored("SPY", 40)
    strategy = paper_strategy()
    clock = ManualClock(after_close(bars[-1].ts))
    broker = SimulatedBroker(clock=clock)

    first = strategy_tick(strategy=strategy, broker=broker, clock=clock)
    clock.advance(timedelta(hours=2))
    second = strategy_tick(strategy=strategy, broker=broker, clock=clock)

    assert first.new_bars == 1 and second.skipped == "no new bar"


def test_the_kill_switch_stops_the_loop_and_flattens(settings_: None = None) -> None:
    bars = stored("SPY", 90)
    strategy = paper_strategy(params={"fast": 3, "slow": 8})
    clock = ManualClock(after_close(bars[30].ts))
    broker = SimulatedBroker(clock=clock)
    broker_override("paper", broker)
    for index in range(30, 90):  # trade until a position is open
        run_days(strategy, broker, clock, bars[index : index + 1], first=0)
        if Position.objects.filter(strategy=strategy).exclude(quantity=0).exists():
            break
    else:
        pytest.fail("the strategy never opened a position")

    risk_services.killswitch_activate(reason="operator halt", flatten=True)
    orders_sync(mode="paper", broker=broker, clock=clock)
    after = run_days(strategy, broker, clock, bars[index + 1 : index + 10], first=0)

    assert Position.objects.get(strategy=strategy).quantity == 0
    flatten = Order.objects.get(strategy=strategy, source="kill_switch")
    assert flatten.status == "filled"
    assert all(r.skipped == "Kill switch active (global): operator halt" for r in after)
    assert all(r.code == "kill_switch" for r in after)


def test_the_beat_task_trades_on_the_loopback_alpaca_server(
    alpaca_trading_server: AlpacaTradingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trading.tasks import tick

    assert settings.CELERY_BEAT_SCHEDULE["trading-tick"]["task"] == tick.name
    bars = stored("SPY", 60)
    strategy = paper_strategy(params={"fast": 3, "slow": 8})
    broker = AlpacaBroker(
        api_key=alpaca_trading_server.api_key,
        secret_key=alpaca_trading_server.secret_key,
        url_override=alpaca_trading_server.url,
    )
    broker_override("paper", broker)
    placed = 0
    for bar in bars[20:]:
        now = after_close(bar.ts)
        alpaca_trading_server.set_price("SPY", bar.close)
        monkeypatch.setattr("trading.services.loop.SystemClock", lambda now=now: ManualClock(now))
        tick.apply().get()
        placed = len(alpaca_trading_server.orders())
        if placed >= 2:
            break
    assert placed >= 2, "the strategy placed fewer than two orders on the loopback server"
    orders_sync(mode="paper", broker=broker, clock=ManualClock(now))
    for order in Order.objects.filter(strategy=strategy):
        assert len(alpaca_trading_server.orders_for(order.client_order_id)) == 1
        assert order.status == "filled"
    assert Position.objects.get(strategy=strategy).quantity == alpaca_trading_server.position("SPY")

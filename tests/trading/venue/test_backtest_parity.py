"""Paper fills equal backtest fills: the same bars, the same order, the same fill model.

Each scenario runs a real backtest (``BacktestEngine``) of a strategy that asks for the order
on bar ``SIGNAL_BAR``, then places the same order on the simulated venue when that bar has
just finished and walks the clock through the later bars, asking the venue at each. The fills
(quantity, price, commission) must be the backtest's, to the last digit.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from quant.backtest import BacktestConfig, BacktestEngine, FillAt, MarketData
from quant.clock import ManualClock
from quant.strategies.base import OrderType, PortfolioState, PriceBar, Signal, Strategy, Target
from quant.strategies.config import config_validate
from quant.strategies.registry import register
from tests.trading.venue.conftest import MakeBroker, Row, add_bars, bar_end, bar_start, run, ticket
from trading.venue.models import VenueFill, VenueOrder

pytestmark = pytest.mark.django_db

D = Decimal
SIGNAL_BAR = 2
QUANTITY = 250

BARS: list[Row] = [
    (100.0, 101.0, 99.0, 100.0, 2_000),
    (100.0, 100.5, 99.5, 100.2, 1_500),
    (100.2, 100.8, 99.8, 100.4, 1_200),  # the signal bar
    (98.0, 99.0, 97.5, 98.5, 1_000),  # gaps down
    (98.5, 103.0, 98.0, 102.5, 800),  # runs up through 101
    (103.5, 104.0, 102.0, 103.0, 600),  # gaps up
    (103.0, 103.2, 96.0, 97.0, 900),  # falls through 97.5
    (97.0, 98.0, 96.5, 97.5, 5_000),
]


@register
class OneOrder(Strategy):
    """Asks for one position (with the given order type and prices) on the signal bar."""

    name = "test_venue_one_order"

    def __init__(self, signal: Signal) -> None:
        super().__init__()
        self.signal = signal
        self.bar = -1

    def reset(self) -> None:
        self.bar = -1

    def on_market_data(self, bar: PriceBar) -> None:
        pass

    def generate_signals(self, state: PortfolioState) -> list[Signal]:
        self.bar += 1
        return [self.signal] if self.bar == SIGNAL_BAR else []


def backtest_fills(
    rows: Sequence[Row], signal: Signal, config: BacktestConfig
) -> list[tuple[Decimal, Decimal, Decimal]]:
    full = [r if isinstance(r, tuple) else (r, r, r, r, 1_000_000.0) for r in rows]
    frame = pd.DataFrame(
        full,
        index=pd.DatetimeIndex([bar_start(i) for i in range(len(rows))]),
        columns=["open", "high", "low", "close", "volume"],
    )
    strategy = OneOrder(signal)
    strategy.initialize(
        config_validate(
            {
                "name": "one-order",
                "class": OneOrder.name,
                "symbols": ["SPY"],
                "allow_short": True,
                "sizing": {"mode": "fixed", "quantity": QUANTITY},
            }
        )
    )
    result = BacktestEngine().run(strategy, MarketData.from_frames({"SPY": frame}), config)
    return [(f.quantity, f.price, f.commission) for f in result.fills]


SCENARIOS: dict[str, tuple[Signal, dict[str, Any]]] = {
    "market on the close": (Signal("SPY", Target.LONG), {}),
    "market short sale": (Signal("SPY", Target.SHORT), {}),
    "market at the next open": (Signal("SPY", Target.LONG), {"fill_at": FillAt.NEXT_OPEN}),
    "partial fills under participation": (
        Signal("SPY", Target.LONG),
        {"max_volume_participation": D("0.1")},
    ),
    "partial fills with volume impact": (
        Signal("SPY", Target.SHORT),
        {"max_volume_participation": D("0.15"), "volume_impact_bps": D("50")},
    ),
    "buy limit filled at the gap's open": (
        Signal("SPY", Target.LONG, OrderType.LIMIT, limit_price=99.0),
        {},
    ),
    "buy limit touched inside a bar": (
        Signal("SPY", Target.LONG, OrderType.LIMIT, limit_price=97.8),
        {},
    ),
    "buy stop touched inside a bar": (
        Signal("SPY", Target.LONG, OrderType.STOP, stop_price=101.0),
        {},
    ),
    "buy stop through a gap, partially": (
        Signal("SPY", Target.LONG, OrderType.STOP, stop_price=103.2),
        {"max_volume_participation": D("0.2"), "fill_at": FillAt.NEXT_OPEN},
    ),
    "sell stop touched inside a bar": (
        Signal("SPY", Target.SHORT, OrderType.STOP, stop_price=97.5),
        {},
    ),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_paper_fills_are_the_backtests_fills(
    scenario: str, make_broker: MakeBroker, clock: ManualClock
) -> None:
    signal, options = SCENARIOS[scenario]
    config = BacktestConfig(initial_capital=D("1000000"), timeframe="1Min", **options)
    expected = backtest_fills(BARS, signal, config)
    assert expected, "the scenario must trade in the backtest"

    add_bars("SPY", BARS)
    broker = make_broker(config=config, starting_cash=D("1000000"))
    clock.set(bar_end(SIGNAL_BAR))
    run(
        broker.place_order,
        ticket(
            side="buy" if signal.target is Target.LONG else "sell",
            quantity=QUANTITY,
            order_type=signal.order_type.value,
            limit=str(signal.limit_price) if signal.limit_price else None,
            stop=str(signal.stop_price) if signal.stop_price else None,
        ),
    )
    for i in range(SIGNAL_BAR + 1, len(BARS)):
        clock.set(bar_end(i))
        report = run(broker.get_order_status, VenueOrder.objects.get().broker_order_id)

    fills = [(f.quantity, f.price, f.commission) for f in VenueFill.objects.order_by("ts", "id")]
    assert fills == expected
    assert report.filled_quantity == sum(q for q, _, _ in expected)
    assert report.commission == sum(c for _, _, c in expected)
    value = sum(q * p for q, p, _ in expected)
    assert report.filled_avg_price == (value / report.filled_quantity).quantize(D("1E-8"))

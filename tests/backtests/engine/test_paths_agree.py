"""The two engine paths agree, and no built-in strategy can see the future.

- Equivalence: for every built-in strategy, over random data, parameters, sizing, fill timing,
  partial fills and two symbols on different calendars, the event-driven and the vectorized
  paths give identical fills, trades, open positions, equity and metrics.
- Look-ahead: replacing every bar after a cut point changes no signal at or before it, in
  either form of any built-in strategy; a deliberately peeking strategy is caught.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtests.engine import BacktestConfig, BacktestEngine, BacktestResult, FillAt, MarketData
from backtests.engine.sample import random_walk_bars
from quant.strategies.base import FloatArray, PortfolioState, Signal, Strategy
from quant.strategies.builtin.sma_crossover import SmaCrossover
from quant.strategies.config import config_validate

BUILTINS: dict[str, list[dict[str, Any]]] = {
    "sma_crossover": [{"fast": 3, "slow": 8}, {"fast": 10, "slow": 30}],
    "momentum": [{"lookback": 5, "entry_threshold_pct": 1.0}, {"lookback": 20}],
    "rsi_reversion": [{"period": 5, "oversold": 35, "overbought": 65}, {}],
    "bollinger_reversion": [{"window": 10, "num_std": 1.0}, {"window": 20}],
}
SIZINGS: list[dict[str, Any]] = [
    {"mode": "percent", "percent": 100},
    {"mode": "percent", "percent": 50},
    {"mode": "fixed", "quantity": 40},
    {"mode": "risk", "risk_pct": 1.0, "stop_pct": 2.0},
]


def frames(n: int, seed: int, two: bool) -> dict[str, pd.DataFrame]:
    first = random_walk_bars(n, seed=seed, volatility=0.02)
    if not two:
        return {"AAA": first}
    second = random_walk_bars(n, seed=seed + 1000, price=50.0, volatility=0.025)
    rng = np.random.default_rng(seed)
    keep = rng.random(n) > 0.15  # the second symbol misses about one bar in seven
    keep[:5] = True
    return {"AAA": first, "BBB": second[keep]}


def run_both(
    class_name: str,
    params: Mapping[str, Any],
    data: MarketData,
    config: BacktestConfig,
    *,
    allow_short: bool,
    sizing: Mapping[str, Any],
) -> tuple[BacktestResult, BacktestResult]:
    strategy_config = config_validate(
        {
            "name": "prop",
            "class": class_name,
            "symbols": list(data.symbols),
            "allow_short": allow_short,
            "params": dict(params),
            "sizing": dict(sizing),
        }
    )
    engine = BacktestEngine()
    event = engine.run(strategy_config.build(), data, config, mode="event")
    vector = engine.run(strategy_config.build(), data, config, mode="vectorized")
    return event, vector


def assert_identical(event: BacktestResult, vector: BacktestResult) -> None:
    assert list(event.fills) == list(vector.fills)
    assert event.trades == vector.trades
    assert event.open_positions == vector.open_positions
    assert np.array_equal(event.equity_curve.equity, vector.equity_curve.equity)
    assert np.array_equal(event.equity_curve.cash, vector.equity_curve.cash)
    assert np.array_equal(event.equity_curve.gross_exposure, vector.equity_curve.gross_exposure)
    assert event.metrics == vector.metrics
    assert event.metadata["rejection_count"] == vector.metadata["rejection_count"]
    assert event.metadata["unfilled_orders"] == vector.metadata["unfilled_orders"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    strategy=st.sampled_from(sorted(BUILTINS)),
    variant=st.integers(0, 1),
    allow_short=st.booleans(),
    sizing=st.sampled_from(SIZINGS),
    fill_at=st.sampled_from(list(FillAt)),
    participation=st.sampled_from([None, Decimal("0.0005"), Decimal("0.01")]),
    impact=st.sampled_from([Decimal("0"), Decimal("25")]),
    two=st.booleans(),
    n=st.integers(150, 450),
)
def test_event_and_vectorized_paths_give_identical_results(
    seed: int,
    strategy: str,
    variant: int,
    allow_short: bool,
    sizing: dict[str, Any],
    fill_at: FillAt,
    participation: Decimal | None,
    impact: Decimal,
    two: bool,
    n: int,
) -> None:
    data = MarketData.from_frames(frames(n, seed, two))
    config = BacktestConfig(
        fill_at=fill_at, max_volume_participation=participation, volume_impact_bps=impact
    )

    event, vector = run_both(
        strategy, BUILTINS[strategy][variant], data, config, allow_short=allow_short, sizing=sizing
    )

    assert_identical(event, vector)


@pytest.mark.parametrize("strategy", sorted(BUILTINS))
def test_paths_agree_on_a_long_run(strategy: str) -> None:
    data = MarketData.from_frames(frames(5_000, 11, two=True))

    event, vector = run_both(
        strategy, BUILTINS[strategy][1], data, BacktestConfig(), allow_short=True, sizing=SIZINGS[1]
    )

    assert len(event.trades) > 10  # the comparison is not between two empty runs
    assert_identical(event, vector)


# --- look-ahead ---------------------------------------------------------------------------


def event_signals(strategy: Strategy, data: MarketData) -> list[tuple[int, str, int]]:
    """(bar, symbol, target) of every signal the strategy gives, fed bar by bar."""
    recorded: list[tuple[int, str, int]] = []
    original = strategy.generate_signals

    def recording(state: PortfolioState) -> list[Signal]:
        signals = original(state)
        recorded.extend((current[0], s.symbol, int(s.target)) for s in signals)
        return signals

    current = [0]
    strategy.generate_signals = recording  # type: ignore[method-assign]
    index = pd.DatetimeIndex(data.ts, tz="UTC").to_pydatetime()
    from quant.strategies.base import PriceBar

    for i in range(len(data)):
        current[0] = i
        for symbol in data.symbols:
            c = data.columns[symbol]
            if not np.isnan(c["close"][i]):
                bar = PriceBar(
                    symbol,
                    index[i],
                    float(c["open"][i]),
                    float(c["high"][i]),
                    float(c["low"][i]),
                    float(c["close"][i]),
                    float(c["volume"][i]),
                )
                strategy.on_market_data(bar)
        strategy.generate_signals(None)  # type: ignore[arg-type]
    return recorded


def vector_signals(strategy: Strategy, data: MarketData) -> dict[str, FloatArray]:
    return strategy.signals_frame(data.columns)


def perturbed(source: dict[str, pd.DataFrame], cut: int, seed: int) -> dict[str, pd.DataFrame]:
    """Every bar after position ``cut`` of the timeline replaced by unrelated bars."""
    result = {}
    for symbol, frame in source.items():
        other = random_walk_bars(len(frame), seed=seed, price=float(frame["close"].iloc[0]) * 1.3)
        other.index = frame.index
        later = frame.index > frame.index[min(cut, len(frame) - 1)]
        result[symbol] = pd.concat([frame[~later], other[later]])
    return result


def lookahead_changes(build: Any, source: dict[str, pd.DataFrame], cut: int) -> list[str]:
    """What changed at or before ``cut`` when the future was replaced (empty: nothing)."""
    original, changed = (
        MarketData.from_frames(source),
        MarketData.from_frames(perturbed(source, cut, 99)),
    )
    problems = []
    before_event = [s for s in event_signals(build(), original) if s[0] <= cut]
    after_event = [s for s in event_signals(build(), changed) if s[0] <= cut]
    if before_event != after_event:
        problems.append("event-driven signals")
    before, after = vector_signals(build(), original), vector_signals(build(), changed)
    for symbol in before:
        if not np.array_equal(before[symbol][: cut + 1], after[symbol][: cut + 1], equal_nan=True):
            problems.append(f"vectorized targets of {symbol}")
    return problems


@pytest.mark.parametrize("strategy", sorted(BUILTINS))
@pytest.mark.parametrize("cut", [40, 150, 333])
def test_no_builtin_strategy_sees_the_future(strategy: str, cut: int) -> None:
    source = frames(500, 5, two=True)
    config = config_validate(
        {
            "name": "look",
            "class": strategy,
            "symbols": list(source),
            "allow_short": True,
            "params": BUILTINS[strategy][0],
        }
    )

    assert lookahead_changes(config.build, source, cut) == []
    # and the backtest's trades closed by the cut are the same
    data, changed = (
        MarketData.from_frames(source),
        MarketData.from_frames(perturbed(source, cut, 99)),
    )
    cut_time = pd.Timestamp(data.ts[cut], tz="UTC")
    for mode in ("event", "vectorized"):
        runs = [
            BacktestEngine().run(config.build(), d, BacktestConfig(), mode=mode)
            for d in (data, changed)
        ]
        early = [[t for t in r.trades if pd.Timestamp(t.exit_time) <= cut_time] for r in runs]
        assert early[0] == early[1]


class _Peeking(SmaCrossover):
    """Uses tomorrow's close in its vectorized form: the check must catch it."""

    name = "test_peeking"

    def signals_frame(self, bars: Mapping[str, Mapping[str, FloatArray]]) -> dict[str, FloatArray]:
        shifted = {
            s: {**cols, "close": np.append(cols["close"][1:], cols["close"][-1])}
            for s, cols in bars.items()
        }
        return super().signals_frame(shifted)


def test_a_peeking_strategy_is_caught() -> None:
    source = frames(500, 5, two=False)

    def build() -> Strategy:
        strategy = _Peeking({"fast": 3, "slow": 8})
        strategy.symbols = tuple(source)
        strategy.reset()
        return strategy

    problems = [p for cut in (40, 150, 333) for p in lookahead_changes(build, source, cut)]
    assert "vectorized targets of AAA" in problems

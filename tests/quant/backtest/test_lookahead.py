"""No built-in strategy sees the future, in either form, and the engine feeds it none.

For a cut point t, every bar after t is replaced by unrelated random bars (same calendar,
valid OHLC). Nothing at or before t may change: not the targets ``signals_frame`` gives, not
the signals the event-driven engine collects bar by bar, not the trades, fills and equity of
the backtest up to t. A strategy that peeks at tomorrow's close is caught by the same check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from quant.backtest import BacktestConfig, BacktestEngine, BacktestResult, FillAt, MarketData
from quant.backtest.sample import random_walk_bars
from quant.strategies.base import FloatArray, PortfolioState, PriceBar, Signal, Strategy
from quant.strategies.builtin.sma_crossover import SmaCrossover
from quant.strategies.config import StrategyConfig, config_validate

# small windows so every strategy signals often: long, short and flat all show up
BUILTINS: dict[str, dict[str, Any]] = {
    "sma_crossover": {"fast": 3, "slow": 8},
    "momentum": {"lookback": 5, "entry_threshold_pct": 1.0},
    "rsi_reversion": {"period": 5, "oversold": 35, "overbought": 65},
    "bollinger_reversion": {"window": 10, "num_std": 1.0},
}
CUTS = list(range(20, 500, 37))  # timeline positions; the last one leaves 1 bar to replace
Build = Callable[[MarketData], Strategy]
EventSignals = list[tuple[int, str, int]]


def frames(seed: int = 5) -> dict[str, pd.DataFrame]:
    """Two symbols; the second misses about one bar in seven (NaN gaps on the timeline)."""
    first = random_walk_bars(500, seed=seed, volatility=0.02)
    second = random_walk_bars(500, seed=seed + 1000, price=50.0, volatility=0.025)
    keep = np.random.default_rng(seed).random(500) > 0.15
    keep[:5] = True
    return {"AAA": first, "BBB": second[keep]}


def replace_future(
    source: Mapping[str, pd.DataFrame], cut_ts: pd.Timestamp
) -> dict[str, pd.DataFrame]:
    """Every bar after ``cut_ts`` replaced by an unrelated random walk at another price level."""
    result: dict[str, pd.DataFrame] = {}
    for number, (symbol, frame) in enumerate(source.items()):
        later = frame.index > cut_ts
        other = random_walk_bars(
            int(later.sum()), seed=99 + number, price=float(frame["close"].iloc[0]) * 1.3
        )
        other.index = frame.index[later]
        result[symbol] = pd.concat([frame[~later], other])
    return result


def run_recording(
    strategy: Strategy, data: MarketData, config: BacktestConfig
) -> tuple[EventSignals, BacktestResult]:
    """An event-driven backtest that records (bar, symbol, target) of every signal the
    strategy gives: the engine's own feed, so a feed that ran ahead would show here."""
    position = {ts: i for i, ts in enumerate(pd.DatetimeIndex(data.ts, tz="UTC").to_pydatetime())}
    recorded: EventSignals = []
    original = strategy.generate_signals

    def recording(state: PortfolioState) -> list[Signal]:
        signals = original(state)
        recorded.extend((position[state.ts], s.symbol, int(s.target)) for s in signals)
        return signals

    strategy.generate_signals = recording  # type: ignore[method-assign]
    result = BacktestEngine().run(strategy, data, config, mode="event")
    return recorded, result


def signals_by_form(build: Build, data: MarketData) -> tuple[EventSignals, dict[str, FloatArray]]:
    events, _ = run_recording(build(data), data, BacktestConfig())
    return events, build(data).signals_frame(data.columns)


def lookahead_changes(build: Build, source: Mapping[str, pd.DataFrame]) -> list[str]:
    """For each cut t in CUTS, what changed at or before t once the bars after t were
    replaced (empty: nothing did). Each replacement must change some later signal."""
    data = MarketData.from_frames(source)
    events, targets = signals_by_form(build, data)
    problems = []
    for cut in CUTS:
        changed = MarketData.from_frames(
            replace_future(source, pd.Timestamp(data.ts[cut], tz="UTC"))
        )
        events2, targets2 = signals_by_form(build, changed)
        later_changed = events != events2
        if [s for s in events if s[0] <= cut] != [s for s in events2 if s[0] <= cut]:
            problems.append(f"event-driven signals at or before bar {cut}")
        for symbol, values in targets.items():
            if not np.array_equal(values[: cut + 1], targets2[symbol][: cut + 1], equal_nan=True):
                problems.append(f"vectorized targets of {symbol} at or before bar {cut}")
            later_changed |= not np.array_equal(values, targets2[symbol], equal_nan=True)
        assert later_changed, f"replacing the bars after {cut} changed nothing: a blind check"
    return problems


def builtin(class_name: str, **overrides: Any) -> StrategyConfig:
    return config_validate(
        {
            "name": "lookahead",
            "class": class_name,
            "symbols": ["AAA", "BBB"],
            "allow_short": True,
            "params": BUILTINS[class_name],
            **overrides,
        }
    )


@pytest.mark.parametrize("class_name", sorted(BUILTINS))
def test_no_builtin_strategy_signal_changes_when_the_future_does(class_name: str) -> None:
    config = builtin(class_name)
    source = frames()

    events, targets = signals_by_form(lambda _: config.build(), MarketData.from_frames(source))
    problems = lookahead_changes(lambda _: config.build(), source)

    kinds = {-1, 1} if class_name == "sma_crossover" else {-1, 0, 1}  # a crossover is never flat
    assert {target for _, _, target in events} == kinds
    assert {int(t) for v in targets.values() for t in v[~np.isnan(v)]} == kinds
    assert problems == []


@pytest.mark.parametrize("class_name", sorted(BUILTINS))
@pytest.mark.parametrize("mode", ["event", "vectorized"])
@pytest.mark.parametrize(
    "backtest", [BacktestConfig(), BacktestConfig(fill_at=FillAt.NEXT_OPEN)], ids=["close", "open"]
)
def test_the_backtest_up_to_the_cut_is_unchanged_when_the_future_is(
    class_name: str, mode: str, backtest: BacktestConfig
) -> None:
    config = builtin(class_name, sizing={"mode": "percent", "percent": 50})
    source = frames()
    data = MarketData.from_frames(source)
    run = BacktestEngine().run(config.build(), data, backtest, mode=mode)
    assert len(run.trades) > 10

    for cut in CUTS[1::3]:
        cut_ts = pd.Timestamp(data.ts[cut], tz="UTC")
        changed = MarketData.from_frames(replace_future(source, cut_ts))
        other = BacktestEngine().run(config.build(), changed, backtest, mode=mode)

        assert _closed_by(run, cut_ts) == _closed_by(other, cut_ts)
        assert [f for f in run.fills if f.ts <= cut_ts] == [
            f for f in other.fills if f.ts <= cut_ts
        ]
        mine, theirs = run.equity_curve, other.equity_curve
        assert np.array_equal(mine.equity[: cut + 1], theirs.equity[: cut + 1])
        assert np.array_equal(mine.cash[: cut + 1], theirs.cash[: cut + 1])
        assert not np.array_equal(mine.equity, theirs.equity)  # the future did change


def _closed_by(result: BacktestResult, cut_ts: datetime) -> list[Any]:
    return [t for t in result.trades if t.exit_time <= cut_ts]


# --- negative control: a strategy that peeks is caught ----------------------------------


class _Peeking(SmaCrossover):
    """SMA crossover on tomorrow's close, in both forms: ``signals_frame`` shifts the close by
    -1 and ``on_market_data`` looks tomorrow's close up in the run's data (a side channel)."""

    name = "test_peeking"

    def __init__(self, params: Mapping[str, Any], data: MarketData) -> None:
        super().__init__(params)
        self.tomorrow: dict[tuple[str, datetime], float] = {}
        stamps = pd.DatetimeIndex(data.ts, tz="UTC").to_pydatetime()
        for symbol in data.symbols:
            close = data.columns[symbol]["close"]
            rows = np.flatnonzero(~np.isnan(close))
            following = np.append(rows[1:], rows[-1])
            for row, nxt in zip(rows, following, strict=True):
                self.tomorrow[(symbol, stamps[row])] = float(close[nxt])

    def on_market_data(self, bar: PriceBar) -> None:
        super().on_market_data(bar._replace(close=self.tomorrow[(bar.symbol, bar.ts)]))

    def signals_frame(self, bars: Mapping[str, Mapping[str, FloatArray]]) -> dict[str, FloatArray]:
        shifted = {
            symbol: {**columns, "close": np.append(columns["close"][1:], columns["close"][-1])}
            for symbol, columns in bars.items()
        }
        return super().signals_frame(shifted)


def test_a_strategy_that_peeks_at_tomorrows_close_is_caught() -> None:
    config = builtin("sma_crossover")
    source = {"AAA": frames()["AAA"]}  # one symbol: the -1 shift is exactly tomorrow's close

    def build(data: MarketData) -> Strategy:
        strategy = _Peeking(config.params, data)
        strategy.initialize(config.model_copy(update={"symbols": ("AAA",)}))
        return strategy

    problems = lookahead_changes(build, source)

    assert any(p.startswith("vectorized targets of AAA") for p in problems)
    assert any(p.startswith("event-driven signals") for p in problems)

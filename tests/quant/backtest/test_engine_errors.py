"""What the backtest engine refuses, and how it says so: bad bars, bad configs, failing strategies,
cancellation and progress. Also that the engine and the strategies stay free of Django.

No database: everything here is the Django-free engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from quant.backtest import (
    BacktestCancelled,
    BacktestConfig,
    BacktestEngine,
    MarketData,
    StrategyFailed,
)
from quant.errors import ValidationError
from quant.strategies.base import FloatArray, PortfolioState, PriceBar, Signal, Strategy, Target
from quant.strategies.config import config_validate
from quant.strategies.registry import register

ROOT = Path(__file__).resolve().parents[3]
START = pd.Timestamp("2024-01-01", tz="UTC")


def spy_bars(n: int = 5) -> pd.DataFrame:
    """n valid daily bars from 2024-01-01."""
    index = pd.date_range(START, periods=n, freq="D")
    close = 100.0 + np.arange(n)
    return pd.DataFrame(
        {"open": close, "high": close + 1, "low": close - 1, "close": close, "volume": 1e6},
        index=index,
    )


def spy_data(n: int = 5) -> MarketData:
    return MarketData.from_frames({"SPY": spy_bars(n)})


# --- test strategies: a plain one and some that misbehave on purpose -----------------------


@register
class LongFromTheStart(Strategy):
    """Goes long on the first bar; has both forms (for cancellation and progress)."""

    name = "test_engine_errors_long"
    supports_vectorized = True

    def on_market_data(self, bar: PriceBar) -> None:
        pass

    def generate_signals(self, state: PortfolioState) -> list[Signal]:
        return [Signal(symbol=s, target=Target.LONG) for s in self.symbols]

    def signals_frame(self, bars: Mapping[str, Mapping[str, FloatArray]]) -> dict[str, FloatArray]:
        return {s: np.ones(len(bars[s]["close"])) for s in self.symbols}


@register
class EventOnly(LongFromTheStart):
    name = "test_engine_errors_event_only"
    supports_vectorized = False


@register
class RaisesOnThirdBar(LongFromTheStart):
    name = "test_engine_errors_raises"

    def reset(self) -> None:
        self.seen = 0

    def on_market_data(self, bar: PriceBar) -> None:
        self.seen += 1
        if self.seen == 3:
            raise ZeroDivisionError("bad indicator")


@register
class SignalsUnknownSymbol(LongFromTheStart):
    name = "test_engine_errors_unknown_symbol"

    def generate_signals(self, state: PortfolioState) -> list[Signal]:
        return [Signal(symbol="QQQ", target=Target.LONG)]


def build(cls: type[Strategy], symbols: tuple[str, ...] = ("SPY",)) -> Strategy:
    strategy = cls()
    strategy.initialize(
        config_validate({"name": "errors", "class": cls.name, "symbols": list(symbols)})
    )
    return strategy


def run(strategy: Strategy, data: MarketData, *, mode: str = "event", **kwargs: Any) -> None:
    BacktestEngine().run(strategy, data, BacktestConfig(), mode=mode, **kwargs)


# --- bars -----------------------------------------------------------------------------------


def test_a_missing_column_names_the_symbol_and_the_column() -> None:
    with pytest.raises(ValidationError, match=r"^SPY: bars lack the column\(s\) volume$"):
        MarketData.from_frames({"SPY": spy_bars().drop(columns="volume")})


def test_a_nan_value_names_the_symbol_column_and_bar() -> None:
    frame = spy_bars()
    frame.loc[START + pd.Timedelta(days=2), "close"] = np.nan

    with pytest.raises(
        ValidationError, match=r"^SPY: close is missing at 2024-01-03T00:00:00\+00:00$"
    ):
        MarketData.from_frames({"SPY": frame})


def test_high_below_low_names_the_symbol_and_bar() -> None:
    frame = spy_bars()
    frame.loc[START + pd.Timedelta(days=1), "high"] = 90.0  # low is 100

    with pytest.raises(
        ValidationError,
        match=r"^SPY: bar at 2024-01-02T00:00:00\+00:00 is not a valid OHLCV bar",
    ):
        MarketData.from_frames({"SPY": frame})


def test_a_duplicate_timestamp_names_the_symbol_and_timestamp() -> None:
    frame = spy_bars()
    doubled = pd.concat([frame, frame.iloc[[1]]])

    with pytest.raises(
        ValidationError,
        match=r"^SPY: two bars share the timestamp 2024-01-02T00:00:00\+00:00$",
    ):
        MarketData.from_frames({"SPY": doubled})


def test_a_value_that_is_not_a_number_names_the_symbol() -> None:
    frame = spy_bars().astype(object)
    frame.loc[START, "volume"] = "lots"

    with pytest.raises(ValidationError, match=r"^SPY: bars hold a value that is not a number"):
        MarketData.from_frames({"SPY": frame})


def test_an_infinite_value_names_the_symbol_column_and_bar() -> None:
    frame = spy_bars()
    frame.loc[START + pd.Timedelta(days=3), ["high", "close"]] = np.inf

    with pytest.raises(
        ValidationError, match=r"^SPY: high is infinite at 2024-01-04T00:00:00\+00:00$"
    ):
        MarketData.from_frames({"SPY": frame})


def test_an_error_in_the_second_symbol_names_that_symbol() -> None:
    frame = spy_bars()
    frame.loc[START, "open"] = np.nan

    with pytest.raises(ValidationError, match=r"^QQQ: open is missing"):
        MarketData.from_frames({"SPY": spy_bars(), "QQQ": frame})


def test_an_empty_date_range_says_which_symbol_and_dates() -> None:
    with pytest.raises(
        ValidationError, match=r"^no bars for SPY between 2025-01-01 and 2025-02-01$"
    ):
        MarketData.from_frames(
            {"SPY": spy_bars()},
            start=datetime(2025, 1, 1, tzinfo=UTC),
            end=datetime(2025, 2, 1, tzinfo=UTC),
        )


# --- config ---------------------------------------------------------------------------------


def test_start_after_end_is_refused() -> None:
    with pytest.raises(
        ValidationError, match=r"start_date 2024-02-01 is after end_date 2024-01-01"
    ):
        BacktestConfig(
            start_date=datetime(2024, 2, 1, tzinfo=UTC), end_date=datetime(2024, 1, 1, tzinfo=UTC)
        )


def test_a_negative_commission_is_refused_by_name() -> None:
    with pytest.raises(ValidationError) as caught:
        BacktestConfig(commission_per_trade=Decimal("-1"))

    assert caught.value.details["problems"] == [
        "commission_per_trade: must be a finite number >= 0, got -1"
    ]


@pytest.mark.parametrize("cap", ["0", "-0.1", "1.5"])
def test_volume_participation_outside_zero_to_one_is_refused(cap: str) -> None:
    with pytest.raises(ValidationError, match=r"max_volume_participation: must be in \(0, 1\]"):
        BacktestConfig(max_volume_participation=Decimal(cap))


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("initial_capital", "NaN", "initial_capital: must be a finite number >= 0, got NaN"),
        ("initial_capital", "abc", "initial_capital: 'abc' is not a number"),
        ("slippage_bps", "NaN", "slippage_bps: must be a finite number >= 0, got NaN"),
        ("max_volume_participation", "NaN", "max_volume_participation: must be in (0, 1]"),
        ("max_volume_participation", "abc", "max_volume_participation: 'abc' is not a number"),
    ],
)
def test_values_that_are_not_numbers_are_named_not_crashed_on(
    field: str, value: str, problem: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        BacktestConfig.from_dict({field: value})

    assert caught.value.details["problems"] == [problem]


def test_volume_participation_of_one_is_allowed() -> None:
    config = BacktestConfig(max_volume_participation=Decimal("1"))

    assert config.max_volume_participation == 1


# --- failing strategies ---------------------------------------------------------------------


def test_a_strategy_that_raises_fails_the_run_naming_the_strategy_bar_and_error() -> None:
    strategy = build(RaisesOnThirdBar)

    with pytest.raises(StrategyFailed) as caught:
        run(strategy, spy_data())

    assert caught.value.message == (
        "strategy 'test_engine_errors_raises' raised in on_market_data / generate_signals "
        "at 2024-01-03T00:00:00+00:00: ZeroDivisionError: bad indicator"
    )
    assert isinstance(caught.value.__cause__, ZeroDivisionError)


def test_a_signal_for_a_symbol_outside_the_run_fails_the_run() -> None:
    strategy = build(SignalsUnknownSymbol)

    with pytest.raises(
        StrategyFailed, match=r"'test_engine_errors_unknown_symbol' signalled 'QQQ'"
    ):
        run(strategy, spy_data())


def test_a_signal_on_a_missing_bar_fails_the_run() -> None:
    gap = spy_bars().drop(index=START + pd.Timedelta(days=1))
    data = MarketData.from_frames({"SPY": spy_bars(), "QQQ": gap})
    strategy = build(LongFromTheStart, symbols=("SPY", "QQQ"))
    strategy.generate_signals = lambda state: [  # type: ignore[method-assign]
        Signal(symbol="QQQ", target=Target.LONG if state.ts.day == 2 else Target.FLAT)
    ]

    with pytest.raises(StrategyFailed, match=r"signalled QQQ at 2024-01-02T00:00:00\+00:00"):
        run(strategy, data)


def test_vectorized_mode_needs_a_vectorized_form() -> None:
    strategy = build(EventOnly)

    with pytest.raises(ValidationError, match="'test_engine_errors_event_only' has no vectorized"):
        run(strategy, spy_data(), mode="vectorized")


# --- cancellation and progress --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["event", "vectorized"])
def test_should_cancel_stops_the_run(mode: str) -> None:
    asked: list[bool] = []

    def should_cancel() -> bool:
        asked.append(True)
        return True

    with pytest.raises(BacktestCancelled):
        run(build(LongFromTheStart), spy_data(), mode=mode, should_cancel=should_cancel)

    assert asked == [True]  # the first checkpoint stops it


@pytest.mark.parametrize(
    "mode",
    ["event", "vectorized"],
)
def test_progress_is_non_decreasing_and_ends_at_one(mode: str) -> None:
    seen: list[float] = []

    run(build(LongFromTheStart), spy_data(5_000), mode=mode, progress=seen.append)

    assert len(seen) >= 2
    assert all(0.0 <= f <= 1.0 for f in seen)
    assert seen == sorted(seen)
    assert seen[-1] == 1.0

"""Mean reversion on RSI extremes or Bollinger-band breaks, exiting back at the middle."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import Field, model_validator

from quant.strategies.base import BoolArray, FloatArray, PriceBar, Strategy, StrategyParams, Target
from quant.strategies.builtin._common import (
    TargetStrategyMixin,
    target_from_flags,
    targets_by_symbol,
)
from quant.strategies.indicators import RunningWindow, WilderRsi, rolling_mean_std, rsi
from quant.strategies.registry import register


def _shift(values: FloatArray | float) -> FloatArray | float:
    """The previous bar's value (NaN at the first bar); constants stay constants."""
    if isinstance(values, float):
        return values
    return np.concatenate(([np.nan], values[:-1]))


def _crossed(series: FloatArray, level: FloatArray | float) -> BoolArray:
    """Where ``series`` crossed ``level`` (either way) from the previous bar to this one."""
    before, level_before = _shift(series), _shift(level)
    with np.errstate(invalid="ignore"):
        up = (before < level_before) & (series >= level)
        down = (before > level_before) & (series <= level)
    result: BoolArray = up | down
    return result


class RsiReversionParams(StrategyParams):
    period: int = Field(default=14, ge=2, le=1000)
    oversold: float = Field(default=30.0, gt=0, lt=100)
    overbought: float = Field(default=70.0, gt=0, lt=100)
    exit_level: float = Field(default=50.0, gt=0, lt=100)

    @model_validator(mode="after")
    def _levels_in_order(self) -> RsiReversionParams:
        if not self.oversold < self.exit_level < self.overbought:
            raise ValueError("levels must satisfy oversold < exit_level < overbought")
        return self


@register
class RsiReversion(TargetStrategyMixin, Strategy):
    """Long below the oversold RSI, short above the overbought RSI (when shorting is allowed),
    flat when RSI crosses back through the exit level."""

    name = "rsi_reversion"
    description = "Mean reversion on Wilder's RSI"
    Params = RsiReversionParams
    supports_vectorized = True
    params: RsiReversionParams

    def reset(self) -> None:
        self._reset_targets()
        self._rsi: dict[str, tuple[WilderRsi, float]] = {}

    def on_market_data(self, bar: PriceBar) -> None:
        p = self.params
        state, prev = self._rsi.get(bar.symbol) or (WilderRsi(p.period), float("nan"))
        value = state.push(bar.close)
        self._rsi[bar.symbol] = (state, value)
        if value < p.oversold:
            self._set_target(bar, Target.LONG)
        elif value > p.overbought:
            self._set_target(bar, Target.SHORT)
        elif (prev < p.exit_level <= value) or (prev > p.exit_level >= value):
            self._set_target(bar, Target.FLAT)

    def signals_frame(self, bars: Mapping[str, Mapping[str, FloatArray]]) -> dict[str, FloatArray]:
        p = self.params

        def compute(columns: Mapping[str, FloatArray]) -> FloatArray:
            value = rsi(columns["close"], p.period)
            with np.errstate(invalid="ignore"):
                return target_from_flags(
                    len(value),
                    flat=_crossed(value, p.exit_level),
                    long=value < p.oversold,
                    short=value > p.overbought,
                )

        return targets_by_symbol(bars, compute)


class BollingerReversionParams(StrategyParams):
    window: int = Field(default=20, ge=2, le=10_000)
    num_std: float = Field(default=2.0, gt=0, le=10)


@register
class BollingerReversion(TargetStrategyMixin, Strategy):
    """Long when the close falls below the lower band, short above the upper band (when
    shorting is allowed), flat when the close crosses the middle band."""

    name = "bollinger_reversion"
    description = "Mean reversion on Bollinger bands"
    Params = BollingerReversionParams
    supports_vectorized = True
    params: BollingerReversionParams

    def reset(self) -> None:
        self._reset_targets()
        self._bands: dict[str, tuple[RunningWindow, float, float]] = {}

    def on_market_data(self, bar: PriceBar) -> None:
        p = self.params
        window, prev_close, prev_mid = self._bands.get(bar.symbol) or (
            RunningWindow(p.window, squares=True),
            float("nan"),
            float("nan"),
        )
        window.push(bar.close)
        mid, std = window.mean(), window.std()
        self._bands[bar.symbol] = (window, bar.close, mid)
        close = bar.close
        if close < mid - p.num_std * std:
            self._set_target(bar, Target.LONG)
        elif close > mid + p.num_std * std:
            self._set_target(bar, Target.SHORT)
        elif (prev_close < prev_mid and close >= mid) or (prev_close > prev_mid and close <= mid):
            self._set_target(bar, Target.FLAT)

    def signals_frame(self, bars: Mapping[str, Mapping[str, FloatArray]]) -> dict[str, FloatArray]:
        p = self.params

        def compute(columns: Mapping[str, FloatArray]) -> FloatArray:
            close = columns["close"]
            mid, std = rolling_mean_std(close, p.window)
            with np.errstate(invalid="ignore"):
                return target_from_flags(
                    len(close),
                    flat=_crossed(close, mid),
                    long=close < mid - p.num_std * std,
                    short=close > mid + p.num_std * std,
                )

        return targets_by_symbol(bars, compute)

"""Simple moving-average crossover: long when the fast SMA crosses above the slow one."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field, model_validator

from quant.strategies.base import FloatArray, PriceBar, Strategy, StrategyParams, Target
from quant.strategies.builtin._common import (
    TargetStrategyMixin,
    target_from_flags,
    targets_by_symbol,
)
from quant.strategies.indicators import RunningWindow, crossed_above, sma
from quant.strategies.registry import register


class SmaCrossoverParams(StrategyParams):
    fast: int = Field(default=10, ge=1, le=10_000)
    slow: int = Field(default=30, ge=2, le=10_000)

    @model_validator(mode="after")
    def _fast_below_slow(self) -> SmaCrossoverParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        return self


@register
class SmaCrossover(TargetStrategyMixin, Strategy):
    """Enter long when SMA(fast) crosses above SMA(slow); exit (or go short) on the cross down."""

    name = "sma_crossover"
    description = "Moving-average crossover (trend following)"
    Params = SmaCrossoverParams
    supports_vectorized = True
    params: SmaCrossoverParams

    def reset(self) -> None:
        self._reset_targets()
        self._state: dict[str, tuple[RunningWindow, RunningWindow, float, float]] = {}

    def on_market_data(self, bar: PriceBar) -> None:
        p = self.params
        fast, slow, prev_fast, prev_slow = self._state.get(bar.symbol) or (
            RunningWindow(p.fast),
            RunningWindow(p.slow),
            float("nan"),
            float("nan"),
        )
        fast.push(bar.close)
        slow.push(bar.close)
        f, s = fast.mean(), slow.mean()
        if prev_fast < prev_slow and f > s:
            self._set_target(bar, Target.LONG)
        elif prev_fast > prev_slow and f < s:
            self._set_target(bar, Target.SHORT)
        self._state[bar.symbol] = (fast, slow, f, s)

    def signals_frame(self, bars: Mapping[str, Mapping[str, FloatArray]]) -> dict[str, FloatArray]:
        def compute(columns: Mapping[str, FloatArray]) -> FloatArray:
            close = columns["close"]
            fast, slow = sma(close, self.params.fast), sma(close, self.params.slow)
            return target_from_flags(
                len(close), long=crossed_above(fast, slow), short=crossed_above(slow, fast)
            )

        return targets_by_symbol(bars, compute)

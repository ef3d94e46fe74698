"""Time-series momentum: long when the return over a lookback beats a threshold."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

import numpy as np
from pydantic import Field

from quant.strategies.base import FloatArray, PriceBar, Strategy, StrategyParams, Target
from quant.strategies.builtin._common import (
    TargetStrategyMixin,
    target_from_flags,
    targets_by_symbol,
)
from quant.strategies.indicators import rate_of_change
from quant.strategies.registry import register


class MomentumParams(StrategyParams):
    lookback: int = Field(default=20, ge=1, le=10_000)
    entry_threshold_pct: float = Field(default=2.0, ge=0, le=1000)
    exit_threshold_pct: float = Field(default=0.0, ge=-1000, le=1000)


@register
class Momentum(TargetStrategyMixin, Strategy):
    """Long when the lookback return exceeds the entry threshold, flat when it falls below the
    exit threshold, short when it is below minus the entry threshold."""

    name = "momentum"
    description = "Time-series momentum (rate of change over a lookback)"
    Params = MomentumParams
    supports_vectorized = True
    params: MomentumParams

    def reset(self) -> None:
        self._reset_targets()
        self._closes: dict[str, deque[float]] = {}

    def on_market_data(self, bar: PriceBar) -> None:
        closes = self._closes.setdefault(bar.symbol, deque(maxlen=self.params.lookback + 1))
        closes.append(bar.close)
        if len(closes) > self.params.lookback:
            self._set_target(bar, self._target(bar.close / closes[0] - 1.0))

    def _target(self, roc: float) -> Target | None:
        entry, exit_ = self.params.entry_threshold_pct / 100, self.params.exit_threshold_pct / 100
        if roc > entry:
            return Target.LONG
        if roc < -entry:
            return Target.SHORT
        if roc < exit_:
            return Target.FLAT
        return None

    def signals_frame(self, bars: Mapping[str, Mapping[str, FloatArray]]) -> dict[str, FloatArray]:
        entry, exit_ = self.params.entry_threshold_pct / 100, self.params.exit_threshold_pct / 100

        def compute(columns: Mapping[str, FloatArray]) -> FloatArray:
            roc = rate_of_change(columns["close"], self.params.lookback)
            with np.errstate(invalid="ignore"):
                return target_from_flags(
                    len(roc), flat=roc < exit_, long=roc > entry, short=roc < -entry
                )

        return targets_by_symbol(bars, compute)

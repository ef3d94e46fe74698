"""Plumbing shared by the built-in strategies: per-symbol state and NaN-aware array targets."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from quant.strategies.base import BoolArray, FloatArray, PortfolioState, PriceBar, Signal, Target


class TargetStrategyMixin:
    """Keeps the latest target each symbol's bar produced until ``generate_signals`` reads it."""

    _fresh: dict[str, Target]

    def _reset_targets(self) -> None:
        self._fresh = {}

    def _set_target(self, bar: PriceBar, target: Target | None) -> None:
        if target is not None:
            self._fresh[bar.symbol] = target

    def generate_signals(self, state: PortfolioState) -> list[Signal]:
        fresh, self._fresh = self._fresh, {}
        return [Signal(symbol=s, target=t) for s, t in fresh.items()]


def targets_by_symbol(
    bars: Mapping[str, Mapping[str, FloatArray]],
    compute: Callable[[Mapping[str, FloatArray]], FloatArray],
) -> dict[str, FloatArray]:
    """Run ``compute`` on each symbol's own bars (NaN rows dropped) and scatter back."""
    out: dict[str, FloatArray] = {}
    for symbol, columns in bars.items():
        valid = ~np.isnan(columns["close"])
        if valid.all():
            out[symbol] = compute(columns)
            continue
        targets = np.full(valid.shape, np.nan)
        targets[valid] = compute({k: v[valid] for k, v in columns.items()})
        out[symbol] = targets
    return out


def target_from_flags(n: int, **flags: BoolArray) -> FloatArray:
    """NaN everywhere except where a flag is set: long=+1, short=-1, flat=0 (later wins)."""
    out = np.full(n, np.nan)
    for name, value in (("flat", 0.0), ("long", 1.0), ("short", -1.0)):
        if name in flags:
            out[flags[name]] = value
    return out

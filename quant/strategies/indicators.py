"""Causal indicators in two forms that agree to the last bit: whole-array and one-bar-at-a-time.

The vectorized backtest path uses the array forms, the event-driven path the incremental
ones; identical trades need identical floats, so each pair performs the same float operations
in the same order (SMA and bands from running sums, Wilder's RSI by its recursion).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from quant.strategies.base import BoolArray, FloatArray


def sma(values: FloatArray, n: int) -> FloatArray:
    """Simple moving average from a running sum; NaN until n values are in."""
    out = np.full(values.shape, np.nan)
    if len(values) >= n:
        sums = np.cumsum(values)
        before = np.concatenate(([0.0], sums[:-n]))
        out[n - 1 :] = (sums[n - 1 :] - before) / n
    return out


def rolling_mean_std(values: FloatArray, n: int) -> tuple[FloatArray, FloatArray]:
    """Rolling mean and sample standard deviation (ddof=1) from running sums."""
    mean, std = np.full(values.shape, np.nan), np.full(values.shape, np.nan)
    if len(values) >= n:
        s1, s2 = np.cumsum(values), np.cumsum(values * values)
        w1 = s1[n - 1 :] - np.concatenate(([0.0], s1[:-n]))
        w2 = s2[n - 1 :] - np.concatenate(([0.0], s2[:-n]))
        mean[n - 1 :] = w1 / n
        std[n - 1 :] = np.sqrt(np.maximum((w2 - w1 * w1 / n) / (n - 1), 0.0))
    return mean, std


def rate_of_change(values: FloatArray, n: int) -> FloatArray:
    out = np.full(values.shape, np.nan)
    if len(values) > n:
        out[n:] = values[n:] / values[:-n] - 1.0
    return out


class RunningWindow:
    """Incremental twin of ``sma`` / ``rolling_mean_std``."""

    def __init__(self, n: int, *, squares: bool = False) -> None:
        self.n, self.squares = n, squares
        self.s1 = self.s2 = 0.0
        self.hist1: deque[float] = deque(maxlen=n + 1)
        self.hist2: deque[float] = deque(maxlen=n + 1)
        self.count = 0

    def push(self, x: float) -> None:
        self.s1 = self.s1 + x
        self.hist1.append(self.s1)
        if self.squares:
            self.s2 = self.s2 + x * x
            self.hist2.append(self.s2)
        self.count += 1

    @property
    def ready(self) -> bool:
        return self.count >= self.n

    def _window(self, hist: deque[float], total: float) -> float:
        return total - (hist[0] if self.count > self.n else 0.0)

    def mean(self) -> float:
        count, n = self.count, self.n
        if count < n:
            return math.nan
        return (self.s1 - (self.hist1[0] if count > n else 0.0)) / n

    def std(self) -> float:
        if not self.ready:
            return math.nan
        w1, w2 = self._window(self.hist1, self.s1), self._window(self.hist2, self.s2)
        return math.sqrt(max((w2 - w1 * w1 / self.n) / (self.n - 1), 0.0))


class WilderRsi:
    """Wilder's RSI: the first average is a simple mean of n changes, then (avg*(n-1)+x)/n."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.prev: float | None = None
        self.count = 0
        self.gain = self.loss = 0.0

    def push(self, x: float) -> float:
        if self.prev is None:
            self.prev = x
            return math.nan
        change, self.prev = x - self.prev, x
        up, down = max(change, 0.0), max(-change, 0.0)
        self.count += 1
        if self.count <= self.n:
            self.gain, self.loss = self.gain + up, self.loss + down
            if self.count < self.n:
                return math.nan
            self.gain, self.loss = self.gain / self.n, self.loss / self.n
        else:
            self.gain = (self.gain * (self.n - 1) + up) / self.n
            self.loss = (self.loss * (self.n - 1) + down) / self.n
        if self.loss == 0.0:
            return 100.0 if self.gain > 0.0 else 50.0
        return 100.0 - 100.0 / (1.0 + self.gain / self.loss)


def rsi(values: FloatArray, n: int) -> FloatArray:
    state = WilderRsi(n)
    return np.fromiter((state.push(float(x)) for x in values), dtype=np.float64, count=len(values))


def crossed_above(a: FloatArray, b: FloatArray) -> BoolArray:
    """True at i when a[i-1] < b[i-1] and a[i] > b[i] (False where either is NaN)."""
    out = np.zeros(a.shape, dtype=bool)
    out[1:] = (a[:-1] < b[:-1]) & (a[1:] > b[1:])
    return out

"""Causal indicators over whole float64 arrays: the value at bar t uses bars 0..t only.

Leading values that a window cannot fill yet are NaN. Simple means, sample deviations and
Wilder's RSI come from ``quant.strategies.indicators`` so research and trading compute the
same floats. Conventions follow the usual references (and the ``ta`` library the tests
compare with): EMAs are seeded with the first value (``adjust=False``), Wilder's averages with
the simple mean of their first window, Bollinger bands use the population deviation.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from quant.strategies.base import FloatArray
from quant.strategies.indicators import rolling_mean_std, rsi, sma

__all__ = [
    "atr",
    "bollinger",
    "dollar_volume",
    "ema",
    "log_returns",
    "macd",
    "on_balance_volume",
    "relative_volume",
    "rolling_mean",
    "rolling_std",
    "rolling_zscore",
    "rsi",
    "simple_returns",
    "true_range",
]


def simple_returns(close: FloatArray, periods: int) -> FloatArray:
    """close[t] / close[t - periods] - 1."""
    out = np.full(close.shape, np.nan)
    if len(close) > periods:
        out[periods:] = close[periods:] / close[:-periods] - 1.0
    return out


def log_returns(close: FloatArray, periods: int) -> FloatArray:
    """log(close[t] / close[t - periods])."""
    out = np.full(close.shape, np.nan)
    if len(close) > periods:
        out[periods:] = np.log(close[periods:] / close[:-periods])
    return out


def _nan_prefix_len(values: FloatArray) -> int:
    """How many leading NaNs (a returns series has some); running sums start after them."""
    nan = np.isnan(values)
    return len(values) if nan.all() else int(np.argmin(nan))


def rolling_mean(values: FloatArray, window: int) -> FloatArray:
    start, out = _nan_prefix_len(values), np.full(values.shape, np.nan)
    out[start:] = sma(values[start:], window)
    return out


def rolling_std(values: FloatArray, window: int) -> FloatArray:
    """Sample standard deviation (ddof=1) over the last ``window`` values."""
    start, out = _nan_prefix_len(values), np.full(values.shape, np.nan)
    out[start:] = rolling_mean_std(values[start:], window)[1]
    return out


def rolling_zscore(values: FloatArray, window: int) -> FloatArray:
    """(x - rolling mean) / rolling sample std; 0 where the window is flat.

    Running sums leave a flat window a deviation of rounding size rather than 0, so a
    deviation below 1e-9 of the window's magnitude (at least 1) counts as flat.
    """
    start, out = _nan_prefix_len(values), np.full(values.shape, np.nan)
    mean, std = rolling_mean_std(values[start:], window)
    flat = std <= 1e-9 * np.maximum(np.abs(mean), 1.0)
    z = np.divide(values[start:] - mean, std, out=np.zeros_like(std), where=~flat)
    z[np.isnan(mean)] = np.nan
    out[start:] = z
    return out


def ema(values: FloatArray, span: int) -> FloatArray:
    """EMA with alpha = 2 / (span + 1), seeded with the first non-NaN value; NaN before it."""
    return (
        pd.Series(values).ewm(span=span, adjust=False).mean().to_numpy(dtype=np.float64, copy=True)
    )


def macd(
    close: FloatArray, fast: int, slow: int, signal: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """MACD line, its signal line and their difference (the histogram).

    The line is NaN for the first ``slow - 1`` bars, the signal line (an EMA of the line seeded
    at its first value) and histogram for ``slow + signal - 2``.
    """
    line = ema(close, fast) - ema(close, slow)
    line[: slow - 1] = np.nan
    sig = ema(line, signal)
    sig[: slow + signal - 2] = np.nan
    return line, sig, line - sig


def bollinger(close: FloatArray, window: int, k: float) -> dict[str, FloatArray]:
    """Bands at mean ± k population deviations; pct_b = position in the band (0.5 when the
    band is flat), width = (upper - lower) / mid."""
    mean, sample_std = rolling_mean_std(close, window)
    std = sample_std * math.sqrt((window - 1) / window)
    upper, lower = mean + k * std, mean - k * std
    span = upper - lower
    flat = span <= 1e-9 * np.abs(mean)
    pct_b = np.divide(close - lower, span, out=np.full(close.shape, 0.5), where=~flat)
    pct_b[np.isnan(mean)] = np.nan
    return {"mid": mean, "upper": upper, "lower": lower, "pct_b": pct_b, "width": span / mean}


def true_range(high: FloatArray, low: FloatArray, close: FloatArray) -> FloatArray:
    """max(high - low, |high - prev close|, |low - prev close|); high - low on the first bar."""
    out = high - low
    if len(close) > 1:
        prev = close[:-1]
        out[1:] = np.maximum.reduce([out[1:], np.abs(high[1:] - prev), np.abs(low[1:] - prev)])
    return out


def atr(high: FloatArray, low: FloatArray, close: FloatArray, window: int) -> FloatArray:
    """Wilder's average true range: the mean of the first ``window`` true ranges, then
    (prev * (window - 1) + tr) / window. NaN for the first ``window - 1`` bars."""
    tr = true_range(high, low, close).tolist()
    out = [math.nan] * len(tr)
    if len(tr) >= window:
        value = sum(tr[:window]) / window
        out[window - 1] = value
        for i in range(window, len(tr)):
            value = (value * (window - 1) + tr[i]) / window
            out[i] = value
    return np.asarray(out, dtype=np.float64)


def relative_volume(volume: FloatArray, window: int) -> FloatArray:
    """volume / its mean over the last ``window`` bars (1 when that mean is 0)."""
    mean = sma(volume, window)
    out = np.divide(volume, mean, out=np.ones_like(mean), where=mean > 0)
    out[np.isnan(mean)] = np.nan
    return out


def dollar_volume(close: FloatArray, volume: FloatArray, window: int) -> FloatArray:
    """close * volume, averaged over the last ``window`` bars (window 1 = the bar's own)."""
    traded = close * volume
    return traded if window == 1 else sma(traded, window)


def on_balance_volume(close: FloatArray, volume: FloatArray) -> FloatArray:
    """Granville's OBV from 0 at the first bar: + volume on an up close, - on a down close,
    unchanged on an equal close."""
    step = np.zeros(close.shape)
    if len(close) > 1:
        step[1:] = np.sign(close[1:] - close[:-1]) * volume[1:]
    return np.cumsum(step)

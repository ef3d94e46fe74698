"""Indicators: the array and one-bar-at-a-time forms agree to the bit, and match references."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from quant.strategies.indicators import (
    RunningWindow,
    WilderRsi,
    crossed_above,
    rate_of_change,
    rolling_mean_std,
    rsi,
    sma,
)

prices = arrays(
    np.float64,
    st.integers(1, 120),
    elements=st.floats(1.0, 10_000.0, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=200, deadline=None)
@given(values=prices, n=st.integers(2, 40))
def test_array_and_incremental_forms_agree_to_the_bit(values: np.ndarray, n: int) -> None:
    window = RunningWindow(n, squares=True)
    wilder = WilderRsi(n)
    means, stds, rsis = [], [], []
    for x in values.tolist():
        window.push(x)
        means.append(window.mean())
        stds.append(window.std())
        rsis.append(wilder.push(x))
    mean, std = rolling_mean_std(values, n)

    assert np.array_equal(sma(values, n), np.array(means), equal_nan=True)
    assert np.array_equal(mean, np.array(means), equal_nan=True)
    assert np.array_equal(std, np.array(stds), equal_nan=True)
    assert np.array_equal(rsi(values, n), np.array(rsis), equal_nan=True)


def reference_wilder_rsi(values: np.ndarray, n: int) -> np.ndarray:
    """Textbook Wilder RSI, written out plainly."""
    out = np.full(len(values), np.nan)
    changes = np.diff(values)
    if len(changes) < n:
        return out
    gain = np.clip(changes, 0, None)
    loss = np.clip(-changes, 0, None)
    avg_gain, avg_loss = gain[:n].mean(), loss[:n].mean()
    for i in range(n, len(values)):
        if i > n:
            avg_gain = (avg_gain * (n - 1) + gain[i - 1]) / n
            avg_loss = (avg_loss * (n - 1) + loss[i - 1]) / n
        out[i] = 100.0 if avg_loss == 0 else 100 - 100 / (1 + avg_gain / avg_loss)
    return out


def test_values_match_pandas_and_a_textbook_rsi() -> None:
    rng = np.random.default_rng(1)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 2_000)))
    series = pd.Series(close)
    mean, std = rolling_mean_std(close, 20)

    assert np.allclose(sma(close, 20), series.rolling(20).mean(), equal_nan=True, rtol=1e-10)
    assert np.allclose(mean, series.rolling(20).mean(), equal_nan=True, rtol=1e-10)
    assert np.allclose(std, series.rolling(20).std(), equal_nan=True, rtol=1e-7)
    assert np.allclose(rsi(close, 14), reference_wilder_rsi(close, 14), equal_nan=True)
    assert np.allclose(rate_of_change(close, 5), series.pct_change(5), equal_nan=True)


def test_crossed_above_needs_a_strict_cross() -> None:
    a = np.array([1.0, 2.0, 3.0, 3.0, 1.0, np.nan, 5.0])
    b = np.array([2.0, 2.0, 2.0, 3.0, 2.0, 2.0, 2.0])

    # 1<2 then 2>2? no; 2<2? no; 3>2 after 2==2: not strict; NaN never crosses
    assert crossed_above(a, b).tolist() == [False, False, False, False, False, False, False]
    assert crossed_above(np.array([1.0, 3.0]), np.array([2.0, 2.0])).tolist() == [False, True]

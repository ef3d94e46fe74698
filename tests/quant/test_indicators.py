"""Indicators: the array and one-bar-at-a-time forms agree to the bit, and match references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
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
# cents from a handful of levels: repeated prices, flat stretches, windows without a loss
ticks = st.lists(st.sampled_from([99.99, 100.0, 100.01, 100.5]), min_size=1, max_size=80).map(
    np.array
)


@settings(max_examples=200, deadline=None)
@given(values=prices | ticks, n=st.integers(1, 40))
def test_array_and_incremental_forms_agree_to_the_bit(values: np.ndarray, n: int) -> None:
    k = max(n, 2)  # a sample deviation and an RSI need at least 2; an SMA may be of 1 (fast=1)
    plain, bands, wilder = RunningWindow(n), RunningWindow(k, squares=True), WilderRsi(k)
    means, band_means, stds, rsis = [], [], [], []
    for x in values.tolist():
        plain.push(x)
        bands.push(x)
        means.append(plain.mean())
        band_means.append(bands.mean())
        stds.append(bands.std())
        rsis.append(wilder.push(x))
    mean, std = rolling_mean_std(values, k)

    assert np.array_equal(sma(values, n), np.array(means), equal_nan=True)
    assert np.array_equal(mean, np.array(band_means), equal_nan=True)
    assert np.array_equal(std, np.array(stds), equal_nan=True)
    assert np.array_equal(rsi(values, k), np.array(rsis), equal_nan=True)


def reference_wilder_rsi(values: np.ndarray, n: int) -> np.ndarray:
    """Textbook Wilder RSI, written out plainly (50 when the window neither rose nor fell)."""
    out = np.full(len(values), np.nan)
    gains, losses = [], []
    for i in range(1, len(values)):
        change = values[i] - values[i - 1]
        gains.append(change if change > 0 else 0.0)
        losses.append(-change if change < 0 else 0.0)
        if len(gains) < n:
            continue
        if len(gains) == n:
            avg_gain, avg_loss = sum(gains) / n, sum(losses) / n
        else:
            avg_gain = (avg_gain * (n - 1) + gains[-1]) / n
            avg_loss = (avg_loss * (n - 1) + losses[-1]) / n
        if avg_loss == 0:
            out[i] = 100.0 if avg_gain > 0 else 50.0
        else:
            out[i] = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    return out


def random_walk(seed: int, size: int, volatility: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    walk: np.ndarray = 100 * np.exp(np.cumsum(rng.normal(0, volatility, size)))
    return walk


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(1, 2_000),
    volatility=st.floats(0.002, 0.05),
    n=st.integers(2, 60),
)
def test_values_match_pandas_and_a_textbook_rsi(
    seed: int, size: int, volatility: float, n: int
) -> None:
    close = random_walk(seed, size, volatility)
    series = pd.Series(close)
    mean, std = rolling_mean_std(close, n)

    assert np.allclose(sma(close, n), series.rolling(n).mean(), equal_nan=True, rtol=1e-10)
    assert np.allclose(mean, series.rolling(n).mean(), equal_nan=True, rtol=1e-10)
    # From running sums of squares the variance carries an absolute rounding error of a few
    # eps * (sum of squares so far): about 2e-6 of the price level at 2,000 bars, and large
    # next to a near-zero spread (a bound, not a tolerance picked to pass).
    slack = np.sqrt(8 * np.finfo(np.float64).eps * np.cumsum(close * close) / (n - 1))
    expected_std = series.rolling(n).std().to_numpy()
    assert np.array_equal(np.isnan(std), np.isnan(expected_std))
    assert (np.abs(std - expected_std) <= 1e-9 * expected_std + slack)[n - 1 :].all()
    assert np.allclose(rsi(close, n), reference_wilder_rsi(close, n), equal_nan=True, rtol=1e-9)
    assert np.allclose(rate_of_change(close, n), series.pct_change(n), equal_nan=True)


@settings(max_examples=100, deadline=None)
@given(values=ticks, n=st.integers(2, 10))
def test_rsi_of_flat_and_one_way_stretches_matches_the_textbook(values: np.ndarray, n: int) -> None:
    assert np.allclose(rsi(values, n), reference_wilder_rsi(values, n), equal_nan=True, rtol=1e-9)


def test_rsi_conventions_on_a_rising_and_a_flat_market() -> None:
    assert rsi(np.array([1.0, 2.0, 3.0, 4.0]), 2).tolist()[2:] == [100.0, 100.0]
    assert rsi(np.array([5.0, 5.0, 5.0, 5.0]), 2).tolist()[2:] == [50.0, 50.0]
    # first average: gains (1, 0)/2 = 0.5, losses (0, 2)/2 = 1 -> 100 - 100/1.5
    assert rsi(np.array([1.0, 2.0, 0.0]), 2)[2] == pytest.approx(100 - 100 / 1.5)


def test_crossed_above_needs_a_strict_cross() -> None:
    a = np.array([1.0, 2.0, 3.0, 3.0, 1.0, np.nan, 5.0])
    b = np.array([2.0, 2.0, 2.0, 3.0, 2.0, 2.0, 2.0])

    # 1<2 then 2>2? no; 2<2? no; 3>2 after 2==2: not strict; NaN never crosses
    assert crossed_above(a, b).tolist() == [False, False, False, False, False, False, False]
    assert crossed_above(np.array([1.0, 3.0]), np.array([2.0, 2.0])).tolist() == [False, True]

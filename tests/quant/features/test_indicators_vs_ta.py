"""Each feature kind against the ``ta`` library (bukosabino, 0.11.0) or pandas on the same bars.

Where ``ta`` has no such indicator (rolling std, z-scores, relative and dollar volume) pandas'
own rolling windows are the reference. Convention differences are spelled out per test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import ta

from quant.features.definitions import compute_features, feature_set_validate
from tests.quant.features.bars import random_bars

N = 1_000


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return random_bars(N, seed=7)


@pytest.fixture(scope="module")
def plain(bars: pd.DataFrame) -> pd.DataFrame:
    """The same bars on a RangeIndex: ``ta`` slices some series by position."""
    return bars.reset_index(drop=True)


def feature(bars: pd.DataFrame, kind: str, **params: object) -> pd.DataFrame:
    definition = feature_set_validate({"name": "t", "features": [{"kind": kind, "params": params}]})
    return compute_features(bars, definition)


def assert_same(
    ours: pd.Series | np.ndarray,
    ref: pd.Series | np.ndarray,
    *,
    start: int = 0,
    atol: float = 1e-12,
) -> None:
    """Equal to 1e-9 relative from ``start`` on; NaN exactly where the reference has NaN."""
    a, b = np.asarray(ours, dtype=float)[start:], np.asarray(ref, dtype=float)[start:]
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=atol)


@pytest.mark.parametrize("periods", [1, 5])
def test_returns_match_ta_daily_return(
    bars: pd.DataFrame, plain: pd.DataFrame, periods: int
) -> None:
    ours = feature(bars, "returns", periods=periods).iloc[:, 0]
    if periods == 1:  # ta reports percent
        ref = ta.others.DailyReturnIndicator(plain.close).daily_return() / 100
    else:  # ta only has one-bar returns
        ref = plain.close.pct_change(periods)
    assert_same(ours, ref)


@pytest.mark.parametrize("periods", [1, 5])
def test_log_returns_match_ta_daily_log_return(
    bars: pd.DataFrame, plain: pd.DataFrame, periods: int
) -> None:
    ours = feature(bars, "log_returns", periods=periods).iloc[:, 0]
    if periods == 1:
        ref = ta.others.DailyLogReturnIndicator(plain.close).daily_log_return() / 100
    else:
        ref = np.log(plain.close).diff(periods)
    assert_same(ours, ref)


@pytest.mark.parametrize("window", [5, 14])
def test_rsi_converges_to_ta_after_the_seed_fades(
    bars: pd.DataFrame, plain: pd.DataFrame, window: int
) -> None:
    """Ours is Wilder's: the first average is the mean of ``window`` changes. ``ta`` starts its
    averages at bar 0 instead (an EMA with alpha 1/window seeded with 0). The gap shrinks by
    (1 - 1/window) per bar, so after 40 windows it is below 1e-9 RSI points."""
    ours = feature(bars, "rsi", window=window).iloc[:, 0].to_numpy()
    ref = ta.momentum.RSIIndicator(plain.close, window=window).rsi().to_numpy()
    assert np.isnan(ours[:window]).all() and not np.isnan(ours[window:]).any()
    assert abs(ours[window] - ref[window]) > 1e-6  # the seeds do differ ...
    np.testing.assert_allclose(ours[40 * window :], ref[40 * window :], rtol=0, atol=1e-9)


@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (3, 10, 4)])
def test_macd_matches_ta_exactly(
    bars: pd.DataFrame, plain: pd.DataFrame, fast: int, slow: int, signal: int
) -> None:
    """Same convention as ``ta``: EMAs seeded with the first value, NaN until enough bars."""
    ours = feature(bars, "macd", fast=fast, slow=slow, signal=signal)
    ref = ta.trend.MACD(plain.close, window_slow=slow, window_fast=fast, window_sign=signal)
    prefix = f"macd_{fast}_{slow}_{signal}"
    assert_same(ours[f"{prefix}_macd"], ref.macd())
    assert_same(ours[f"{prefix}_signal"], ref.macd_signal())
    assert_same(ours[f"{prefix}_hist"], ref.macd_diff())


@pytest.mark.parametrize(("window", "k"), [(20, 2.0), (10, 1.5)])
def test_bollinger_matches_ta(
    bars: pd.DataFrame, plain: pd.DataFrame, window: int, k: float
) -> None:
    """Both use the population deviation (ddof=0); ``ta``'s width is in percent, ours a fraction.

    Our deviation comes from running sums (shared with the trading code, which must match its
    one-bar-at-a-time twin to the bit); pandas uses an online update. They agree to about 1e-11
    of the price, so the band position, a ratio of small differences, is compared to 1e-8."""
    ours = feature(bars, "bollinger", window=window, k=k)
    ref = ta.volatility.BollingerBands(plain.close, window=window, window_dev=k)
    prefix = f"bollinger_{window}_{k:g}".replace(".", "p")
    assert_same(ours[f"{prefix}_mid"], ref.bollinger_mavg())
    assert_same(ours[f"{prefix}_upper"], ref.bollinger_hband())
    assert_same(ours[f"{prefix}_lower"], ref.bollinger_lband())
    assert_same(ours[f"{prefix}_pct_b"], ref.bollinger_pband(), atol=1e-8)
    assert_same(ours[f"{prefix}_width"], ref.bollinger_wband() / 100, atol=1e-10)


def test_rolling_mean_matches_ta_sma(bars: pd.DataFrame, plain: pd.DataFrame) -> None:
    ours = feature(bars, "rolling_mean", window=20).iloc[:, 0]
    assert_same(ours, ta.trend.SMAIndicator(plain.close, window=20).sma_indicator())


@pytest.mark.parametrize("source", ["close", "returns", "log_returns", "volume"])
def test_rolling_std_and_zscore_match_pandas(
    bars: pd.DataFrame, plain: pd.DataFrame, source: str
) -> None:
    """Sample deviation (ddof=1), as pandas; ``ta`` has no rolling deviation of its own."""
    values = {
        "close": plain.close,
        "returns": plain.close.pct_change(),
        "log_returns": np.log(plain.close).diff(),
        "volume": plain.volume,
    }[source]
    rolling = values.rolling(20)
    std = feature(bars, "rolling_std", window=20, source=source).iloc[:, 0]
    mean = feature(bars, "rolling_mean", window=20, source=source).iloc[:, 0]
    z = feature(bars, "zscore", window=20, source=source).iloc[:, 0]
    assert_same(mean, rolling.mean())
    assert_same(std, rolling.std(ddof=1))
    # 1e-9 relative to the window's scale: running sums lose a few digits against pandas
    ref = (values - rolling.mean()) / rolling.std(ddof=1)
    np.testing.assert_allclose(z, ref, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("window", [14, 5])
def test_atr_matches_ta_wilder(bars: pd.DataFrame, plain: pd.DataFrame, window: int) -> None:
    """Wilder's ATR in both: mean of the first ``window`` true ranges (the first bar's is high -
    low), then (prev * (window - 1) + tr) / window. ``ta`` fills the warmup with 0, we with NaN."""
    ours = feature(bars, "atr", window=window).iloc[:, 0].to_numpy()
    ref = ta.volatility.AverageTrueRange(plain.high, plain.low, plain.close, window=window)
    assert np.isnan(ours[: window - 1]).all()
    assert_same(ours, ref.average_true_range(), start=window - 1)


def test_obv_matches_ta_up_to_its_conventions(bars: pd.DataFrame, plain: pd.DataFrame) -> None:
    """Granville's OBV starts at 0 and ignores an unchanged close. ``ta`` starts at the first
    bar's volume and adds the volume on an unchanged close; these bars have no unchanged close,
    so the two differ by the first volume exactly."""
    assert (plain.close.diff().iloc[1:] != 0).all()
    ours = feature(bars, "obv").iloc[:, 0]
    ref = ta.volume.OnBalanceVolumeIndicator(plain.close, plain.volume).on_balance_volume()
    assert_same(ours, ref - plain.volume.iloc[0])


def test_obv_by_hand_with_an_unchanged_close() -> None:
    bars = random_bars(4).assign(close=[10.0, 11.0, 11.0, 9.0], volume=[5.0, 7.0, 3.0, 2.0])
    assert feature(bars, "obv").iloc[:, 0].tolist() == [0.0, 7.0, 7.0, 5.0]


def test_volume_features_match_pandas(bars: pd.DataFrame, plain: pd.DataFrame) -> None:
    """No ``ta`` counterpart: volume z-score, relative volume and dollar volume against pandas."""
    volume, rolling = plain.volume, plain.volume.rolling(20)
    zscore = feature(bars, "volume_zscore", window=20).iloc[:, 0]
    np.testing.assert_allclose(
        zscore, (volume - rolling.mean()) / rolling.std(), rtol=1e-7, atol=1e-8
    )
    assert_same(feature(bars, "relative_volume", window=20).iloc[:, 0], volume / rolling.mean())
    dollar = plain.close * volume
    assert_same(feature(bars, "dollar_volume").iloc[:, 0], dollar)
    assert_same(feature(bars, "dollar_volume", window=10).iloc[:, 0], dollar.rolling(10).mean())


def test_flat_windows_give_neutral_values_not_nan() -> None:
    """A flat window has no deviation: z-scores are 0, the band position is the middle (0.5),
    relative volume 1 even when no volume traded."""
    bars = random_bars(30).assign(close=100.0, volume=0.0)
    definition = feature_set_validate(
        {
            "name": "flat",
            "features": [
                {"kind": "zscore", "params": {"window": 5}},
                {"kind": "bollinger", "params": {"window": 5}},
                {"kind": "volume_zscore", "params": {"window": 5}},
                {"kind": "relative_volume", "params": {"window": 5}},
            ],
        }
    )
    out = compute_features(bars, definition).iloc[4:]
    assert (out["zscore_5_close"] == 0).all() and (out["volume_zscore_5"] == 0).all()
    assert (out["bollinger_5_2_pct_b"] == 0.5).all() and (out["relative_volume_5"] == 1).all()

"""Synthetic OHLCV bars for the feature, label and cross-validation tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def bars_from_closes(close: np.ndarray | Sequence[float], volume: float = 1_000.0) -> pd.DataFrame:
    """Bars whose open, high and low equal the close (what the label tests need)."""
    close = np.asarray(close, dtype=np.float64)
    index = pd.date_range("2024-01-01", periods=len(close), freq="D", tz="UTC")
    frame = {c: close for c in ("open", "high", "low", "close")}
    return pd.DataFrame({**frame, "volume": np.full(len(close), volume)}, index=index)


def random_bars(n: int, seed: int = 0, *, start: str = "2015-01-02") -> pd.DataFrame:
    """A geometric random walk with consistent OHLC and lognormal volume, daily UTC index."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.015, n)))
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0, 0.003, n))
    top, bottom = np.maximum(open_, close), np.minimum(open_, close)
    high = top * (1 + rng.uniform(0, 0.01, n))
    low = bottom * (1 - rng.uniform(0, 0.01, n))
    volume = np.round(rng.lognormal(13, 0.4, n))
    index = pd.date_range(start, periods=n, freq="D", tz="UTC")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )

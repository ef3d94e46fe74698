"""Seeded synthetic OHLCV frames for tests, benchmarks and demos (a geometric random walk)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.signal import lfilter


def random_walk_bars(
    n: int,
    *,
    seed: int = 7,
    start: str = "2000-01-03",
    freq: str = "B",
    price: float = 100.0,
    volatility: float = 0.015,
    reversion: float = 0.002,
) -> pd.DataFrame:
    """``n`` bars indexed by UTC bar start; prices rounded to cents like real quotes.

    The log price follows a slowly mean-reverting walk around ``price`` (``reversion`` per
    bar), so a million bars neither explode nor fall to zero, yet trend for long stretches.
    """
    rng = np.random.default_rng(seed)
    shocks = rng.normal(0.0, volatility, n)
    log_dev = lfilter([1.0], [1.0, -(1.0 - reversion)], shocks)
    close = np.round(price * np.exp(log_dev), 2)
    gap = rng.normal(0.0, volatility / 3, n)
    open_ = np.round(np.concatenate(([price], close[:-1])) * np.exp(gap), 2)
    spread = np.abs(rng.normal(0.0, volatility / 2, n))
    high = np.round(np.maximum(open_, close) * (1 + spread), 2)
    low = np.round(np.minimum(open_, close) * (1 - spread), 2)
    volume = rng.integers(50_000, 2_000_000, n).astype(np.float64)
    # second resolution: a million business days run past the nanosecond limit (year 2262)
    index = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="ts", unit="s")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )

"""Every feature kind is causal (rewriting the future leaves the past unchanged, to the bit)
and its warmup is exact (NaN before it, finite from it on)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant.features.definitions import (
    FEATURE_KINDS,
    FeatureSetDefinition,
    compute_features,
    feature_set_validate,
)

# small windows so that short random series get past the warmup
CASES: list[tuple[str, dict[str, Any]]] = [
    ("returns", {"periods": 2}),
    ("log_returns", {"periods": 3}),
    ("rsi", {"window": 3}),
    ("macd", {"fast": 2, "slow": 5, "signal": 3}),
    ("bollinger", {"window": 4, "k": 1.5}),
    ("rolling_mean", {"window": 3, "source": "log_returns"}),
    ("rolling_std", {"window": 3, "source": "returns"}),
    ("zscore", {"window": 4, "source": "close"}),
    ("atr", {"window": 3}),
    ("volume_zscore", {"window": 3}),
    ("relative_volume", {"window": 3}),
    ("dollar_volume", {"window": 3}),
    ("obv", {}),
]

# one bar: (log return, upper wick, lower wick, volume); a few repeated values make flat
# windows, unchanged closes and zero volume common
bar = st.tuples(
    st.sampled_from([0.0, 0.01, -0.01]) | st.floats(-0.2, 0.2),
    st.sampled_from([0.0]) | st.floats(0.0, 0.05),
    st.sampled_from([0.0]) | st.floats(0.0, 0.05),
    st.sampled_from([0.0, 100.0]) | st.floats(0.0, 1e7),
)


def make_bars(rows: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    step, up, down, volume = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
    close = 50.0 * np.exp(np.cumsum(step))
    index = pd.date_range("2020-01-01", periods=len(rows), freq="h", tz="UTC")
    return pd.DataFrame(
        {
            "open": close,
            "high": close * (1 + up),
            "low": close * (1 - down),
            "close": close,
            "volume": volume,
        },
        index=index,
    )


def definition(kind: str, params: dict[str, Any]) -> FeatureSetDefinition:
    return feature_set_validate({"name": kind, "features": [{"kind": kind, "params": params}]})


def test_every_registered_kind_is_covered() -> None:
    assert {kind for kind, _ in CASES} == set(FEATURE_KINDS)


@pytest.mark.parametrize(("kind", "params"), CASES, ids=[kind for kind, _ in CASES])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_changing_later_bars_leaves_earlier_values_unchanged(
    kind: str, params: dict[str, Any], data: st.DataObject
) -> None:
    rows = data.draw(st.lists(bar, min_size=1, max_size=40), label="bars")
    t = data.draw(st.integers(0, len(rows) - 1), label="t")
    tail = data.draw(
        st.lists(bar, min_size=len(rows) - t - 1, max_size=len(rows) - t - 1), label="new future"
    )
    d = definition(kind, params)

    before = compute_features(make_bars(rows), d)
    after = compute_features(make_bars(rows[: t + 1] + tail), d)

    assert before.index.equals(after.index)
    np.testing.assert_array_equal(before.iloc[: t + 1].to_numpy(), after.iloc[: t + 1].to_numpy())


@pytest.mark.parametrize(("kind", "params"), CASES, ids=[kind for kind, _ in CASES])
@settings(max_examples=25, deadline=None)
@given(rows=st.lists(bar, min_size=1, max_size=40))
def test_nan_exactly_during_the_warmup(
    kind: str, params: dict[str, Any], rows: list[tuple[float, float, float, float]]
) -> None:
    d = definition(kind, params)
    warmup = d.warmup_bars()
    out = compute_features(make_bars(rows), d).to_numpy()

    assert out.dtype == np.float64
    assert np.isfinite(out[warmup:]).all()
    if 0 < warmup <= len(rows):
        assert np.isnan(out[warmup - 1]).any()  # the warmup is not longer than needed

"""Feature-set YAML: validation names each bad field, the version follows the meaning only,
compute_features keeps the bars' index and declared column order."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from quant.errors import ValidationError
from quant.features.definitions import (
    compute_features,
    feature_set_load,
    feature_set_validate,
)
from tests.quant.features.bars import random_bars

CONFIGS = sorted((Path(__file__).resolve().parents[3] / "configs" / "features").glob("*.yaml"))


def problems_of(data: Any) -> list[str]:
    with pytest.raises(ValidationError) as info:
        feature_set_validate(data, source="set.yaml")
    assert info.value.message.startswith("set.yaml: ")
    return list(info.value.details["problems"])


def test_unknown_kind_param_and_key_are_named_with_did_you_mean_all_at_once() -> None:
    problems = problems_of(
        {
            "name": "bad",
            "descripton": "typo",
            "features": [
                {"kind": "rsii"},
                {"kind": "rsi", "params": {"windw": 3}},
                {"kind": "bollinger", "nme": "bb"},
                {"kind": "macd", "params": {"fast": 30}},
                {"kind": "atr", "params": {"window": 1}},
                {"kind": "zscore", "params": {"source": "closes"}},
            ],
        }
    )
    assert problems == [
        "features[0].kind: unknown feature kind 'rsii' (did you mean 'rsi'?)",
        "features[1].params.windw: unknown parameter (did you mean 'window'?)",
        "features[2].nme: unknown key (did you mean 'name'?)",
        "features[3].params: fast (30) must be below slow (26)",
        "features[4].params.window: Input should be greater than or equal to 2",
        "features[5].params.source: Input should be 'close', 'returns', 'log_returns' or 'volume'",
        "descripton: unknown key (did you mean 'description'?)",
    ]


def test_an_unknown_kind_far_from_any_lists_the_known_ones() -> None:
    (problem,) = problems_of({"name": "x", "features": [{"kind": "ichimoku"}]})
    assert "unknown feature kind 'ichimoku' (known kinds: atr, bollinger," in problem


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"name": "x", "features": []},
            "features: List should have at least 1 item after validation, not 0",
        ),
        ({"features": [{"kind": "rsi"}]}, "name: required"),
        ({"name": "x", "features": [{"params": {}}]}, "features[0].kind: required"),
        ({"name": "x", "features": {"kind": "rsi"}}, "features: Input should be a valid list"),
        (
            {"name": "x", "features": [{"kind": "rsi", "name": "1st"}]},
            "features[0].name: String should match",
        ),
        (
            {"name": "x", "features": [{"kind": "rsi"}, {"kind": "rsi", "params": {"window": 14}}]},
            "features[1]: column 'rsi_14' is also made by features[0] (give one of them a different name)",
        ),
    ],
)
def test_structural_problems_name_the_field(data: dict[str, Any], expected: str) -> None:
    problems = problems_of(data)
    assert any(p.startswith(expected) for p in problems), problems


def test_not_a_mapping_is_refused() -> None:
    with pytest.raises(ValidationError, match="must be a mapping"):
        feature_set_validate(["rsi"], source="set.yaml")  # type: ignore[arg-type]


def test_load_reports_bad_yaml_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nfeatures:\n  - kind: rsi\n   params: {window: 3}\n")
    with pytest.raises(ValidationError, match=r"broken.yaml: not valid YAML at line 4"):
        feature_set_load(path)
    with pytest.raises(ValidationError, match="cannot read the file"):
        feature_set_load(tmp_path / "missing.yaml")


BLOCK = """
name: s
description: first wording
features:
  - kind: rsi
    params:
      window: 14
  - kind: bollinger
    name: bb
    params: {k: 2, window: 20}
"""
FLOW_REORDERED_DEFAULTS_OMITTED = """
features: [{params: {}, kind: rsi}, {name: bb, kind: bollinger, params: {k: 2.0}}]
description: other wording, same features
name: s
"""


def load(text: str) -> Any:
    return feature_set_validate(yaml.safe_load(text))


def test_version_ignores_key_order_formatting_defaults_and_wording() -> None:
    a, b = load(BLOCK), load(FLOW_REORDERED_DEFAULTS_OMITTED)
    assert a.version == b.version
    assert len(a.version) == 64 and int(a.version, 16) >= 0
    assert b.features[1].params == {"window": 20, "k": 2.0}  # defaults filled in
    assert a.as_dict()["features"] == b.as_dict()["features"]


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["features"][0]["params"].update(window=15),
        lambda d: d["features"][1].update(name="bands"),
        lambda d: d["features"].reverse(),
        lambda d: d["features"].append({"kind": "obv"}),
        lambda d: d["features"][1].update(kind="rolling_mean", params={"window": 20}),
    ],
    ids=["param", "column name", "order", "one more", "kind"],
)
def test_version_changes_with_what_is_computed(change: Any) -> None:
    data = yaml.safe_load(BLOCK)
    before = feature_set_validate(data).version
    change(data)
    assert feature_set_validate(data).version != before


def test_version_round_trips_through_as_dict() -> None:
    a = load(BLOCK)
    assert feature_set_validate(yaml.safe_load(yaml.safe_dump(a.as_dict()))).version == a.version


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_example_feature_sets_load_and_compute(path: Path) -> None:
    definition = feature_set_load(path)
    bars = random_bars(300, seed=3)

    out = compute_features(bars, definition)

    assert definition.name == path.stem
    assert list(out.columns) == definition.columns()
    assert out.index.equals(bars.index)
    assert (out.dtypes == np.float64).all()
    assert np.isfinite(out.iloc[definition.warmup_bars() :].to_numpy()).all()
    assert out.iloc[: definition.warmup_bars()].isna().any(axis=None)


def test_the_example_feature_sets_are_found() -> None:
    assert len(CONFIGS) >= 2  # else the parametrized test above would run on nothing


def test_column_names_are_deterministic() -> None:
    definition = feature_set_validate(
        {
            "name": "cols",
            "features": [
                {"kind": "returns"},
                {"kind": "macd", "params": {"fast": 5, "slow": 10, "signal": 3}},
                {"kind": "bollinger", "params": {"k": 2.5}},
                {"kind": "zscore", "params": {"source": "volume", "window": 30}},
                {"kind": "rsi", "name": "rsi_fast", "params": {"window": 5}},
                {"kind": "obv"},
            ],
        }
    )
    assert definition.columns() == [
        "returns_1",
        "macd_5_10_3_macd",
        "macd_5_10_3_signal",
        "macd_5_10_3_hist",
        "bollinger_20_2p5_mid",
        "bollinger_20_2p5_upper",
        "bollinger_20_2p5_lower",
        "bollinger_20_2p5_pct_b",
        "bollinger_20_2p5_width",
        "zscore_30_volume",
        "rsi_fast",
        "obv",
    ]
    assert definition.warmup_bars() == 29


def bad_bars() -> list[tuple[pd.DataFrame, str]]:
    bars = random_bars(10)
    unsorted = bars.iloc[::-1]
    naive = bars.tz_localize(None)
    with_nan = bars.assign(close=[np.nan, *bars.close.iloc[1:]])
    return [
        (bars.drop(columns="volume"), "missing column(s) volume"),
        (naive, "timezone-aware DatetimeIndex"),
        (unsorted, "sorted in time"),
        (with_nan, "column close has NaN"),
        (bars.assign(low=0.0), "column low has zero or negative values"),
        (bars.assign(volume=-1.0), "column volume has negative values"),
    ]


@pytest.mark.parametrize(
    ("bars", "message"), bad_bars(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_bad_bars_get_a_clear_error(bars: pd.DataFrame, message: str) -> None:
    definition = feature_set_validate({"name": "x", "features": [{"kind": "rsi"}]})
    with pytest.raises(ValidationError, match=re.escape(message)):
        compute_features(bars, definition)

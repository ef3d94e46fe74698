"""Shared helpers of the model tests: a feature set with recursive and windowed features, a
bundle trained without a database, stored bars and a quick ``model_train`` call."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from marketdata.domain import Timeframe
from marketdata.services import bars_ingest
from quant.backtest.sample import random_walk_bars
from quant.features.definitions import compute_features, feature_set_validate
from quant.features.labels import LabelDefinition, make_labels
from quant.ml.artifacts import ModelBundle
from quant.ml.base import LABEL, model_class
from tests.support.fixtures import make_bars

START = datetime(2022, 1, 3, tzinfo=UTC)
# Recursive (RSI, MACD, ATR: every earlier bar counts) and windowed features together.
FEATURES: dict[str, Any] = {
    "name": "ml_test",
    "description": "features of the model tests",
    "features": [
        {"kind": "returns", "params": {"periods": 1}},
        {"kind": "returns", "params": {"periods": 5}},
        {"kind": "rsi", "params": {"window": 14}},
        {"kind": "macd", "params": {"fast": 6, "slow": 13, "signal": 5}},
        {"kind": "zscore", "params": {"window": 10}},
        {"kind": "atr", "params": {"window": 10}},
        {"kind": "relative_volume", "params": {"window": 10}},
    ],
}
LABEL_DEF = LabelDefinition(kind="forward_return", horizon=5, threshold=0.02)
FAST_LGBM = {"num_boost_round": 40, "num_leaves": 7, "min_data_in_leaf": 10}


def training_frame(bars: pd.DataFrame, label: LabelDefinition = LABEL_DEF) -> pd.DataFrame:
    """Features + label of one symbol's bars, warmup and unlabelled rows dropped."""
    definition = feature_set_validate(FEATURES)
    features = compute_features(bars, definition)
    labels = make_labels(bars, label)[[LABEL]]
    return features.join(labels, how="inner").dropna()


def bundle_file(
    directory: Path, kind: str = "lightgbm", *, params: dict[str, Any] | None = None
) -> Path:
    """A model trained on random-walk bars, saved as a bundle file (no database involved)."""
    bars = random_walk_bars(600, seed=3, volatility=0.02)
    model = model_class(kind)().fit(
        training_frame(bars), FAST_LGBM if params is None and kind == "lightgbm" else params
    )
    definition = feature_set_validate(FEATURES)
    bundle = ModelBundle.from_model(
        model,
        feature_set=definition.as_dict(),
        feature_set_version=definition.version,
        label=LABEL_DEF.as_dict(),
        symbols=("AAA",),
        timeframe="1Day",
        train_start=bars.index[0].isoformat(),
        train_end=bars.index[-1].isoformat(),
    )
    path = directory / f"{kind}.json"
    path.write_bytes(bundle.to_bytes())
    return path


def ingest_bars(symbols: tuple[str, ...] = ("SPY", "QQQ"), count: int = 400) -> None:
    for symbol in symbols:
        bars = make_bars(symbol, Timeframe.DAY_1, START, count)
        bars_ingest(symbol=symbol, timeframe=Timeframe.DAY_1, bars=bars, source="test")

"""Trade from a stored model: long when P(up) is above the entry level, flat below the exit.

The model bundle (``quant.ml.artifacts``) names its feature set; features come from the same
``compute_features`` that trained it. Recursive features (EMA, Wilder's RSI and ATR, OBV)
depend on every bar before the current one, so each symbol keeps every bar it has seen since
``initialize`` and recomputes the features over them: the event path then sees, at each bar,
exactly the numbers the vectorized path computes over the whole arrays, and both paths trade
alike. The trading loop rebuilds the strategy at each tick over a bounded window of bars, so
this history stays bounded there.

No Django import at module level: the bundle is read from a file path, or through Django's
storage when Django is configured.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from quant.errors import ValidationError
from quant.features.definitions import (
    BAR_COLUMNS,
    FeatureSetDefinition,
    compute_features,
    feature_set_validate,
)
from quant.ml.artifacts import ModelBundle, file_hash, read_bundle_bytes
from quant.ml.base import TradingModel
from quant.strategies.base import FloatArray, PriceBar, Strategy, StrategyParams, Target
from quant.strategies.builtin._common import TargetStrategyMixin, targets_by_symbol
from quant.strategies.registry import register

if TYPE_CHECKING:
    from quant.strategies.config import StrategyConfig

CACHE_SIZE = 8  # loaded models kept per process, keyed by file hash (the trading loop rebuilds
# the strategy at every tick)


class MlSignalParams(StrategyParams):
    artifact: str = Field(min_length=1, description="storage name or file path of the bundle")
    entry_probability: float = Field(default=0.6, gt=0, lt=1)
    exit_probability: float = Field(default=0.5, gt=0, lt=1)
    artifact_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="refuse the bundle unless its file hashes to this (pins the exact model)",
    )

    @model_validator(mode="after")
    def _exit_not_above_entry(self) -> MlSignalParams:
        if self.exit_probability > self.entry_probability:
            raise ValueError(
                f"exit_probability ({self.exit_probability}) must not be above "
                f"entry_probability ({self.entry_probability})"
            )
        return self


@dataclass(frozen=True)
class LoadedModel:
    bundle: ModelBundle
    model: TradingModel
    definition: FeatureSetDefinition
    columns: tuple[int, ...]  # positions of the model's features among the definition's columns
    warmup: int


_CACHE: OrderedDict[str, LoadedModel] = OrderedDict()


def loaded_model(artifact: str, *, sha256: str | None = None) -> LoadedModel:
    """The verified bundle, its model and its feature set (cached by file hash)."""
    data, source = read_bundle_bytes(artifact)
    digest = file_hash(data)
    if sha256 is not None and digest != sha256:
        ModelBundle.from_bytes(data, source=source, sha256=sha256)  # raises, naming the file
    if digest in _CACHE:
        _CACHE.move_to_end(digest)
        return _CACHE[digest]
    bundle = ModelBundle.from_bytes(data, source=source)
    definition = feature_set_validate(bundle.feature_set, source=f"model bundle {source}")
    if definition.version != bundle.feature_set_version:
        raise ValidationError(
            f"model bundle {source}: its features were computed by other feature code "
            f"(version {bundle.feature_set_version[:12]}…, now {definition.version[:12]}…): "
            "retrain the model"
        )
    columns = definition.columns()
    unknown = [name for name in bundle.feature_names if name not in columns]
    if unknown:
        raise ValidationError(
            f"model bundle {source}: features {', '.join(unknown)} are not made by its feature set"
        )
    loaded = LoadedModel(
        bundle=bundle,
        model=bundle.model(),
        definition=definition,
        columns=tuple(columns.index(name) for name in bundle.feature_names),
        warmup=definition.warmup_bars(),
    )
    _CACHE[digest] = loaded
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return loaded


class _History:
    """Every bar one symbol has seen, in growing arrays (amortized O(1) appends)."""

    def __init__(self) -> None:
        self.count = 0
        self.ts = np.zeros(64, dtype=np.int64)
        self.values = np.zeros((64, len(BAR_COLUMNS)))

    def push(self, bar: PriceBar) -> None:
        if self.count == len(self.ts):
            self.ts = np.concatenate([self.ts, np.zeros_like(self.ts)])
            self.values = np.concatenate([self.values, np.zeros_like(self.values)])
        self.ts[self.count] = pd.Timestamp(bar.ts).value
        self.values[self.count] = (bar.open, bar.high, bar.low, bar.close, bar.volume)
        self.count += 1

    def frame(self) -> pd.DataFrame:
        n = self.count
        index = pd.DatetimeIndex(self.ts[:n].view("M8[ns]")).tz_localize("UTC")
        return pd.DataFrame(self.values[:n], index=index, columns=list(BAR_COLUMNS))


@register
class MlSignal(TargetStrategyMixin, Strategy):
    """Long when the model's probability of the positive label is above ``entry_probability``,
    flat when it is below ``exit_probability``, unchanged in between. Never short."""

    name = "ml_signal"
    description = "Trades the predictions of a trained model artifact"
    Params = MlSignalParams
    supports_vectorized = True
    params: MlSignalParams

    def initialize(self, config: StrategyConfig) -> None:
        p = self.params
        self.loaded = loaded_model(p.artifact, sha256=p.artifact_sha256)
        trained_on = self.loaded.bundle.timeframe
        if trained_on != config.timeframe:
            raise ValidationError(
                f"ml_signal: model {p.artifact!r} was trained on {trained_on} bars; "
                f"the strategy runs on {config.timeframe}"
            )
        super().initialize(config)

    def reset(self) -> None:
        self._reset_targets()
        self._history: dict[str, _History] = {}

    def on_market_data(self, bar: PriceBar) -> None:
        history = self._history.get(bar.symbol)
        if history is None:
            history = self._history[bar.symbol] = _History()
        history.push(bar)
        if history.count <= self.loaded.warmup:
            return
        features = compute_features(history.frame(), self.loaded.definition).to_numpy()
        row = features[-1:, self.loaded.columns]
        if np.isnan(row).any():
            return
        target = self._targets(self.loaded.model.probability(row))[0]
        if not np.isnan(target):
            self._set_target(bar, Target(int(target)))

    def signals_frame(self, bars: Mapping[str, Mapping[str, FloatArray]]) -> dict[str, FloatArray]:
        loaded = self.loaded

        def compute(columns: Mapping[str, FloatArray]) -> FloatArray:
            n = len(columns["close"])
            # features are functions of the bar sequence, not of its times (signals_frame gets
            # no timestamps): any increasing index gives the same numbers
            index = pd.date_range("2000-01-01", periods=n, freq="s", tz="UTC")
            frame = pd.DataFrame({c: columns[c] for c in BAR_COLUMNS}, index=index)
            features = compute_features(frame, loaded.definition).to_numpy()[:, loaded.columns]
            usable = ~np.isnan(features).any(axis=1)
            usable[: loaded.warmup] = False
            out = np.full(n, np.nan)
            if usable.any():
                out[usable] = self._targets(loaded.model.probability(features[usable]))
            return out

        return targets_by_symbol(bars, compute)

    def _targets(self, probability: FloatArray) -> FloatArray:
        """1 above the entry level, 0 below the exit level, NaN (no change) in between."""
        p = self.params
        out = np.full(probability.shape, np.nan)
        out[probability < p.exit_probability] = float(Target.FLAT)
        out[probability > p.entry_probability] = float(Target.LONG)
        return out

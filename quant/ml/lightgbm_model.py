"""Gradient-boosted trees (LightGBM) as a ``TradingModel``; SHAP values from ``pred_contrib``.

Training is deterministic: a fixed seed, ``deterministic`` and row-wise histograms, one thread
unless ``num_threads`` says otherwise. The fitted booster is saved as LightGBM's own text
model string.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightgbm as lgb
import numpy as np
from pydantic import Field

from quant.errors import ValidationError
from quant.ml.base import FloatArray, IntArray, ModelParams, TradingModel


class LightGBMParams(ModelParams):
    num_boost_round: int = Field(default=100, ge=1, le=100_000)
    learning_rate: float = Field(default=0.05, gt=0, le=1)
    num_leaves: int = Field(default=15, ge=2, le=131_072)
    max_depth: int = Field(default=-1, ge=-1)
    min_data_in_leaf: int = Field(default=20, ge=1)
    feature_fraction: float = Field(default=1.0, gt=0, le=1)
    bagging_fraction: float = Field(default=1.0, gt=0, le=1)
    bagging_freq: int = Field(default=0, ge=0)
    lambda_l1: float = Field(default=0.0, ge=0)
    lambda_l2: float = Field(default=0.0, ge=0)
    min_gain_to_split: float = Field(default=0.0, ge=0)
    is_unbalance: bool = False
    seed: int = 0
    num_threads: int = Field(default=1, ge=0, description="0 = LightGBM's default (all cores)")


class LightGBMModel(TradingModel):
    kind = "lightgbm"
    Params = LightGBMParams
    params: LightGBMParams

    def __init__(self) -> None:
        super().__init__()
        self.booster: lgb.Booster | None = None

    def _fit(self, x: FloatArray, y: IntArray) -> None:
        p = self.params
        options: dict[str, Any] = {
            "objective": "binary",
            "verbosity": -1,
            "deterministic": True,
            "force_row_wise": True,
            **p.model_dump(exclude={"num_boost_round"}),
        }
        train_set = lgb.Dataset(
            x, label=y, feature_name=[f"f{i}" for i in range(x.shape[1])], params=options
        )
        self.booster = lgb.train(options, train_set, num_boost_round=p.num_boost_round)

    def state(self) -> dict[str, Any]:
        return {"model": self._booster().model_to_string()}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        text = state.get("model")
        if not isinstance(text, str) or not text:
            raise ValidationError("lightgbm model state has no model string")
        try:
            self.booster = lgb.Booster(model_str=text)
        except lgb.basic.LightGBMError as exc:
            raise ValidationError(f"lightgbm model string is not valid: {exc}") from None
        if self.booster.num_feature() != len(self.feature_names):
            raise ValidationError(
                f"lightgbm model expects {self.booster.num_feature()} features, "
                f"the bundle names {len(self.feature_names)}"
            )

    def _raw_score(self, x: FloatArray) -> FloatArray:
        if not len(x):
            return np.zeros(0)
        return np.asarray(self._booster().predict(x, **self._predict_options(raw_score=True)))

    def _contributions(self, x: FloatArray) -> FloatArray:
        if not len(x):
            return np.zeros((0, len(self.feature_names) + 1))
        # SHAP values (TreeSHAP), the expected value in the last column
        return np.asarray(self._booster().predict(x, **self._predict_options(pred_contrib=True)))

    def _predict_options(self, **options: bool) -> dict[str, Any]:
        # one thread unless asked: OpenMP's start-up and spin-waits cost more than a few rows
        # of trees, and on a busy machine far more (a strategy predicts one row per bar)
        threads = self.params.num_threads
        return {**options, "num_threads": threads} if threads else options

    def _booster(self) -> lgb.Booster:
        if self.booster is None:
            raise ValidationError("the model is not fitted yet")
        return self.booster

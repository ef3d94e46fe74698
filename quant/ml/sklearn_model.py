"""Logistic regression on standardized features (scikit-learn) as a ``TradingModel``.

Fitted with ``Pipeline(StandardScaler, LogisticRegression)``; saved as plain numbers (means,
scales, coefficients, intercept) and evaluated from them, so no pickle is involved.

Contributions are exact in log-odds: feature j adds ``coef_j * (x_j - mean_j) / scale_j``, its
coefficient times its standardized deviation from the training mean, and ``base_value`` is the
intercept (the log-odds of a row sitting at the training mean of every feature). For a linear
model on independent features these are also its SHAP values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import Field
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from quant.errors import ValidationError
from quant.ml.base import FloatArray, IntArray, ModelParams, TradingModel


class LogisticParams(ModelParams):
    C: float = Field(default=1.0, gt=0, description="inverse L2 regularization strength")
    max_iter: int = Field(default=1000, ge=1, le=1_000_000)
    tol: float = Field(default=1e-6, gt=0)
    class_weight: Literal["balanced"] | None = None
    seed: int = 0


class LogisticModel(TradingModel):
    kind = "sklearn_logistic"
    Params = LogisticParams
    params: LogisticParams

    def __init__(self) -> None:
        super().__init__()
        self.mean = np.zeros(0)
        self.scale = np.ones(0)
        self.coef = np.zeros(0)
        self.intercept = 0.0

    def _fit(self, x: FloatArray, y: IntArray) -> None:
        p = self.params
        pipeline = Pipeline(
            [
                ("scale", StandardScaler()),
                (
                    "logit",
                    LogisticRegression(
                        C=p.C,
                        max_iter=p.max_iter,
                        tol=p.tol,
                        class_weight=p.class_weight,
                        solver="lbfgs",
                        random_state=p.seed,
                    ),
                ),
            ]
        )
        pipeline.fit(x, y)
        scaler: StandardScaler = pipeline.named_steps["scale"]
        logit: LogisticRegression = pipeline.named_steps["logit"]
        self.mean = np.asarray(scaler.mean_, dtype=np.float64)
        self.scale = np.asarray(scaler.scale_, dtype=np.float64)
        self.coef = np.asarray(logit.coef_[0], dtype=np.float64)
        self.intercept = float(logit.intercept_[0])

    def state(self) -> dict[str, Any]:
        return {
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
        }

    def _load_state(self, state: Mapping[str, Any]) -> None:
        n = len(self.feature_names)
        try:
            arrays = [np.asarray(state[k], dtype=np.float64) for k in ("mean", "scale", "coef")]
            intercept = float(state["intercept"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"logistic model state is not valid ({exc!r})") from None
        if any(a.shape != (n,) for a in arrays):
            raise ValidationError(f"logistic model state does not hold {n} values per array")
        if not (arrays[1] > 0).all():
            raise ValidationError("logistic model state has a scale <= 0")
        self.mean, self.scale, self.coef = arrays
        self.intercept = intercept

    def _terms(self, x: FloatArray) -> FloatArray:
        terms: FloatArray = (x - self.mean) / self.scale * self.coef
        return terms

    def _raw_score(self, x: FloatArray) -> FloatArray:
        # the same sum as ``explain``'s rows, row by row: batch and single-row agree to the bit
        raw: FloatArray = self._terms(x).sum(axis=1) + self.intercept
        return raw

    def _contributions(self, x: FloatArray) -> FloatArray:
        terms = self._terms(x)
        return np.column_stack([terms, np.full(len(x), self.intercept)])

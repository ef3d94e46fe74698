"""``TradingModel``: a binary classifier with ``fit``, ``predict`` and ``explain`` (no Django).

A model learns P(label > 0) from a frame of feature columns plus ``label``; the positive class
is "the label is above zero" (forward return beat its threshold, or triple barrier hit the
upper barrier first), so labels in {0, 1} and in {-1, 0, 1} both work.

Every model works in log-odds: ``raw_score`` is the log-odds of the positive class, the
probability is its sigmoid, and ``explain`` splits the raw score of each row exactly into one
contribution per feature plus a ``base_value`` (SHAP values for LightGBM; coefficient times
standardized deviation from the training mean for the logistic regression).

A fitted model is saved as JSON-able ``state()`` (a LightGBM model string, plain coefficients)
and rebuilt with ``from_state``: no pickled objects.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from quant.errors import ValidationError
from quant.strategies.registry import did_you_mean

LABEL = "label"
BASE_VALUE = "base_value"
MODEL_KINDS = ("lightgbm", "sklearn_logistic")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class ModelParams(BaseModel):
    """Base of each model's typed hyper-parameters: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Predictions:
    """Per row: probability of the positive class, the predicted label (1 at >= 0.5), log-odds."""

    index: pd.Index
    probability: FloatArray
    label: IntArray
    raw_score: FloatArray

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"probability": self.probability, "label": self.label, "raw_score": self.raw_score},
            index=self.index,
        )


@dataclass(frozen=True)
class Explanations:
    """``contributions``: one column per feature plus ``base_value``; each row sums to the raw
    score (log-odds) of that row. ``global_importance``: mean |contribution| per feature."""

    contributions: pd.DataFrame
    global_importance: dict[str, float]

    def raw_score(self) -> pd.Series:
        return self.contributions.sum(axis=1)


class TradingModel(ABC):
    """A binary classifier over a fixed, ordered list of feature columns."""

    kind: ClassVar[str] = ""
    Params: ClassVar[type[ModelParams]] = ModelParams

    def __init__(self) -> None:
        self.feature_names: tuple[str, ...] = ()
        self.params: ModelParams = self.Params()
        self._fitted = False

    @property
    def fitted(self) -> bool:
        return self._fitted

    # --- training ----------------------------------------------------------------------
    def fit(self, train_data: pd.DataFrame, params: Mapping[str, Any] | None = None) -> Self:
        """Learn from feature columns + ``label`` (every other column is a feature)."""
        self.params = self.validate_params(params or {})
        if LABEL not in train_data.columns:
            raise ValidationError(f"training data has no {LABEL!r} column")
        names = tuple(str(c) for c in train_data.columns if c != LABEL)
        if not names:
            raise ValidationError("training data has no feature columns")
        self.feature_names = names
        x = self._matrix(train_data)
        labels = train_data[LABEL].to_numpy(dtype=np.float64)
        if np.isnan(labels).any():
            raise ValidationError("training labels hold NaN: drop rows without a label first")
        y = (labels > 0).astype(np.int64)
        if len(np.unique(y)) < 2:
            raise ValidationError(
                f"training data holds only one class ({'positive' if y[0] else 'negative'}) "
                f"in {len(y)} rows: widen the range or change the label thresholds"
            )
        self._fit(x, y)
        self._fitted = True
        return self

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> ModelParams:
        """Typed params; a ValidationError names each bad key ("did you mean ...")."""
        try:
            return cls.Params.model_validate(dict(params))
        except PydanticValidationError as exc:
            known = list(cls.Params.model_fields)
            problems = []
            for error in exc.errors():
                key = ".".join(str(p) for p in error["loc"]) or "params"
                if error["type"] == "extra_forbidden":
                    problems.append(f"{key}: unknown parameter{did_you_mean(key, known)}")
                else:
                    problems.append(f"{key}: {str(error['msg']).removeprefix('Value error, ')}")
            raise ValidationError(
                f"{cls.kind} params: " + "; ".join(problems) + f" (known: {', '.join(known)})",
                details={"problems": problems},
            ) from None

    # --- inference -----------------------------------------------------------------------
    def predict(self, features: pd.DataFrame) -> Predictions:
        raw = self._raw_score(self._matrix(features))
        probability = _sigmoid(raw)
        return Predictions(
            index=features.index,
            probability=probability,
            label=(probability >= 0.5).astype(np.int64),
            raw_score=raw,
        )

    def probability(self, x: FloatArray) -> FloatArray:
        """P(positive) for a matrix already in ``feature_names`` order (the strategies' fast
        path: no frame to build; the same numbers as ``predict``)."""
        return _sigmoid(self._raw_score(np.ascontiguousarray(x, dtype=np.float64)))

    def explain(self, features: pd.DataFrame) -> Explanations:
        matrix = self._contributions(self._matrix(features))
        columns = [*self.feature_names, BASE_VALUE]
        contributions = pd.DataFrame(matrix, index=features.index, columns=columns)
        mean_abs = (
            np.abs(matrix[:, :-1]).mean(axis=0) if len(matrix) else np.zeros(len(columns) - 1)
        )
        importance = {name: float(v) for name, v in zip(self.feature_names, mean_abs, strict=True)}
        return Explanations(contributions=contributions, global_importance=importance)

    # --- persistence ---------------------------------------------------------------------
    @abstractmethod
    def state(self) -> dict[str, Any]:
        """The fitted model as JSON-able data."""

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any], *, feature_names: Sequence[str], params: Mapping[str, Any]
    ) -> Self:
        model = cls()
        model.feature_names = tuple(feature_names)
        model.params = cls.validate_params(params)
        model._load_state(state)
        model._fitted = True
        return model

    # --- for subclasses --------------------------------------------------------------------
    @abstractmethod
    def _fit(self, x: FloatArray, y: IntArray) -> None: ...

    @abstractmethod
    def _load_state(self, state: Mapping[str, Any]) -> None: ...

    @abstractmethod
    def _raw_score(self, x: FloatArray) -> FloatArray:
        """Log-odds of the positive class per row."""

    @abstractmethod
    def _contributions(self, x: FloatArray) -> FloatArray:
        """(rows, features + 1): per-feature contributions, the base value last."""

    def _matrix(self, frame: pd.DataFrame) -> FloatArray:
        """The feature columns in training order as a C-contiguous float64 matrix."""
        missing = [name for name in self.feature_names if name not in frame.columns]
        if missing:
            raise ValidationError(f"features lack the column(s) {', '.join(missing)}")
        try:
            x = frame.loc[:, list(self.feature_names)].to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"features hold a value that is not a number ({exc})") from None
        if np.isnan(x).any():
            row = int(np.argwhere(np.isnan(x))[0][0])
            raise ValidationError(
                f"features hold NaN (first at row {frame.index[row]}): drop warmup rows first"
            )
        return np.ascontiguousarray(x)


def _sigmoid(raw: FloatArray) -> FloatArray:
    """1 / (1 + e^-x) without overflow warnings for large |x|."""
    out = np.empty_like(raw)
    positive = raw >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-raw[positive]))
    exp = np.exp(raw[~positive])
    out[~positive] = exp / (1.0 + exp)
    return out


def model_class(kind: str) -> type[TradingModel]:
    """The implementation of a model kind (``lightgbm`` or ``sklearn_logistic``)."""
    if kind == "lightgbm":
        from quant.ml.lightgbm_model import LightGBMModel

        return LightGBMModel
    if kind == "sklearn_logistic":
        from quant.ml.sklearn_model import LogisticModel

        return LogisticModel
    raise ValidationError(
        f"unknown model kind {kind!r}{did_you_mean(kind, MODEL_KINDS)}; known: "
        + ", ".join(MODEL_KINDS)
    )

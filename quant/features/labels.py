"""Labels for supervised learning, each with the time it becomes known (``t1``).

Both kinds look at the closes after bar t (entry at close[t]) for ``horizon`` bars:

- ``forward_return``: 1 when some close within the horizon is up at least ``threshold``
  ("up 2% within 5 bars"), else 0. ``t1`` is the first close that reaches it, or the horizon end.
- ``triple_barrier`` (López de Prado): 1 when the upper barrier (a return, e.g. 0.02) is hit
  first, -1 when the lower one (a negative return, e.g. -0.02) is, 0 when neither is hit by the
  vertical barrier at the horizon end. Either horizontal barrier may be left out (None).

Barriers are checked on closes, so two barriers can never be hit in the same bar. ``ret`` is
close[t1] / close[t] - 1. A row whose horizon runs past the data is dropped, even when a
barrier was already hit: keeping only the early hits would bias the last labels upwards.

For a binary classifier, ``binary_target`` maps 1 to 1 and both 0 and -1 to 0 ("the upper
barrier came first" against "it did not").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from quant.errors import ValidationError
from quant.features.definitions import pydantic_problems


class LabelDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["forward_return", "triple_barrier"]
    horizon: int = Field(ge=1, description="bars after the entry bar that the label looks at")
    threshold: float = Field(default=0.02, gt=0, description="forward_return: the return to reach")
    upper: float | None = Field(
        default=None, gt=0, description="triple_barrier: take-profit return"
    )
    lower: float | None = Field(default=None, lt=0, description="triple_barrier: stop-loss return")

    @model_validator(mode="after")
    def _barriers_fit_kind(self) -> LabelDefinition:
        if self.kind == "forward_return" and (self.upper is not None or self.lower is not None):
            raise ValueError(
                "upper and lower are triple_barrier settings; forward_return uses threshold"
            )
        if self.kind == "triple_barrier" and self.upper is None and self.lower is None:
            raise ValueError("a triple_barrier label needs an upper or a lower barrier (or both)")
        return self

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def label_validate(data: Mapping[str, Any], *, source: str = "") -> LabelDefinition:
    """Validate parsed YAML/JSON; one ValidationError names every bad field."""
    label = source or "label definition"
    if not isinstance(data, Mapping):
        raise ValidationError(f"{label}: a label definition must be a mapping of keys to values")
    try:
        return LabelDefinition.model_validate(dict(data))
    except PydanticValidationError as exc:
        problems = pydantic_problems(exc, LabelDefinition)
    raise ValidationError(
        f"{label}: " + "; ".join(problems), details={"source": source, "problems": problems}
    )


def make_labels(bars: pd.DataFrame, definition: LabelDefinition) -> pd.DataFrame:
    """One row per bar whose whole horizon is in the data: ``label`` (int64), ``t1``, ``ret``."""
    if "close" not in getattr(bars, "columns", ()):
        raise ValidationError("bars: missing column close")
    index = bars.index
    if not isinstance(index, pd.DatetimeIndex) or not index.is_monotonic_increasing:
        raise ValidationError("bars: the index must be a DatetimeIndex sorted in time")
    close = bars["close"].to_numpy(dtype=np.float64)
    if not (np.isfinite(close).all() and (close > 0).all()):
        raise ValidationError("bars: column close must be finite and above 0")
    h = definition.horizon
    n = len(close) - h  # rows with a complete horizon
    if n <= 0:
        return _frame(index[:0], np.zeros(0, np.int64), index[:0], close[:0])

    # paths[i, j] = return from close[i] to close[i + 1 + j], for j < horizon
    paths = sliding_window_view(close[1:], h)[:n] / close[:n, None] - 1.0
    if definition.kind == "forward_return":
        up, down = paths >= definition.threshold, np.zeros_like(paths, dtype=bool)
    else:
        upper = np.inf if definition.upper is None else definition.upper
        lower = -np.inf if definition.lower is None else definition.lower
        up, down = paths >= upper, paths <= lower
    first_up = _first_true(up)
    first_down = _first_true(down)
    hit = np.minimum(first_up, first_down)  # h when neither barrier is reached
    labels = np.where(first_up < first_down, 1, np.where(first_down < first_up, -1, 0))
    end = np.arange(n) + 1 + np.minimum(hit, h - 1)
    return _frame(index[:n], labels.astype(np.int64), index[end], close[end] / close[:n] - 1.0)


def binary_target(labels: pd.Series | pd.DataFrame) -> pd.Series:
    """1 where the label is 1 (up first / threshold reached), 0 for 0 and -1."""
    series = labels["label"] if isinstance(labels, pd.DataFrame) else labels
    return (series == 1).astype(np.int64)


def _first_true(mask: np.ndarray) -> np.ndarray:
    """Column of the first True in each row, or the row length when there is none."""
    width = mask.shape[1]
    return np.where(mask.any(axis=1), mask.argmax(axis=1), width)


def _frame(index: pd.Index, labels: np.ndarray, t1: pd.Index, ret: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"label": labels, "t1": t1, "ret": ret}, index=index)

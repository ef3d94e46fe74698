"""Purged K-fold cross-validation with an embargo (López de Prado, AFML chapter 7).

A sample's label starts at t0 (its row's index) and is known only at t1 (``make_labels``'s
``t1`` column). Plain K-fold trains on samples whose label windows overlap the test block, so
the model has seen the test period's outcomes. Here each test block is a contiguous run of
samples, and a training sample is kept only when its [t0, t1] does not touch the test block's
[first t0, last t1]. After the test block's last label end, ``embargo`` more samples are
dropped too, because features over long windows and serially correlated returns still carry
test-period information into the samples just after it.

Usage (scikit-learn compatible)::

    cv = PurgedKFold(5, embargo=10, t1=labels["t1"])           # t1 at construction, or
    cross_val_score(model, X, y, cv=PurgedKFold(5, embargo=10), groups=labels["t1"])

``t1`` is a Series indexed by each sample's t0 (the same index as X when X is a DataFrame);
samples must be in time order. ``embargo`` counts samples (rows of X, one per bar when X has a
row for every bar); ``embargo_pct`` sets it to ceil(pct * number of samples) instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from quant.errors import ValidationError

IntArray = npt.NDArray[np.intp]


class PurgedKFold:
    """K contiguous test blocks in time order; training samples purged and embargoed."""

    def __init__(
        self,
        n_splits: int = 5,
        embargo: int = 0,
        *,
        embargo_pct: float | None = None,
        t1: pd.Series | None = None,
    ) -> None:
        if not isinstance(n_splits, int) or n_splits < 2:
            raise ValidationError(f"n_splits: needs an integer of at least 2, got {n_splits!r}")
        if not isinstance(embargo, int) or embargo < 0:
            raise ValidationError(f"embargo: needs a whole number of samples >= 0, got {embargo!r}")
        if embargo_pct is not None and not 0.0 <= embargo_pct < 1.0:
            raise ValidationError(f"embargo_pct: needs a fraction in [0, 1), got {embargo_pct!r}")
        if embargo_pct is not None and embargo:
            raise ValidationError("embargo and embargo_pct: give one of them, not both")
        self.n_splits = n_splits
        self.embargo = embargo
        self.embargo_pct = embargo_pct
        self.t1 = t1

    def __repr__(self) -> str:
        pct = f", embargo_pct={self.embargo_pct}" if self.embargo_pct is not None else ""
        return f"PurgedKFold(n_splits={self.n_splits}, embargo={self.embargo}{pct})"

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_splits

    def embargo_for(self, n_samples: int) -> int:
        if self.embargo_pct is not None:
            return math.ceil(self.embargo_pct * n_samples)
        return self.embargo

    def split(
        self, X: Any, y: Any = None, groups: pd.Series | None = None
    ) -> Iterator[tuple[IntArray, IntArray]]:
        """Yield (train positions, test positions) for each of the ``n_splits`` folds."""
        t0, t1 = _label_windows(X, self.t1 if self.t1 is not None else groups)
        n = len(t0)
        if n < self.n_splits:
            raise ValidationError(f"PurgedKFold: {n} samples cannot make {self.n_splits} folds")
        embargo = self.embargo_for(n)
        positions = np.arange(n)
        for k, test in enumerate(np.array_split(positions, self.n_splits)):
            first, last = int(test[0]), int(test[-1])
            start, end = t0[first], t1[test].max()
            before = np.flatnonzero(t1[:first] < start)
            resume = max(int(np.searchsorted(t0, end, side="right")), last + 1) + embargo
            train = np.concatenate([before, positions[resume:]])
            if len(train) == 0:
                raise ValidationError(
                    f"PurgedKFold: fold {k} has no training samples left after purging and the "
                    "embargo; use fewer splits, a shorter label horizon or a smaller embargo"
                )
            yield train, test


def _label_windows(X: Any, t1: Any) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """t0 and t1 of every sample as comparable arrays (int64 ns for datetimes)."""
    if t1 is None:
        raise ValidationError(
            "PurgedKFold needs each sample's label end: pass t1= when constructing it or "
            "groups= to split (a Series indexed by t0, e.g. make_labels(...)['t1'])"
        )
    if not isinstance(t1, pd.Series):
        if not isinstance(X, pd.DataFrame | pd.Series):
            raise ValidationError("PurgedKFold: t1 must be a pandas Series indexed by t0")
        t1 = pd.Series(np.asarray(t1), index=X.index)
    if len(t1) != len(X):
        raise ValidationError(f"PurgedKFold: t1 has {len(t1)} rows but X has {len(X)}")
    if isinstance(X, pd.DataFrame | pd.Series) and not X.index.equals(t1.index):
        raise ValidationError("PurgedKFold: t1's index (t0) must be X's index, in the same order")
    t0_values, t1_values = _comparable(t1.index, pd.Index(t1))
    if np.any(np.diff(t0_values) < 0):
        raise ValidationError("PurgedKFold: samples must be sorted by t0 (time order)")
    if np.any(t1_values < t0_values):
        raise ValidationError("PurgedKFold: every t1 must be at or after its t0")
    return t0_values, t1_values


def _comparable(t0: pd.Index, t1: pd.Index) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Both as plain numbers; datetimes as integers in the finer of their two units."""
    if isinstance(t0, pd.DatetimeIndex) and isinstance(t1, pd.DatetimeIndex):
        if (t0.tz is None) != (t1.tz is None):
            raise ValidationError("PurgedKFold: t0 and t1 must both have a timezone or neither")
        units = ("s", "ms", "us", "ns")
        unit = max(t0.unit, t1.unit, key=units.index)
        return t0.as_unit(unit).asi8, t1.as_unit(unit).asi8
    if isinstance(t0, pd.DatetimeIndex) or isinstance(t1, pd.DatetimeIndex):
        raise ValidationError("PurgedKFold: t0 and t1 must both be timestamps or both be numbers")
    if t0.isna().any() or t1.isna().any():
        raise ValidationError("PurgedKFold: t0 and t1 must not be missing")
    try:
        return np.asarray(t0, dtype=np.float64), np.asarray(t1, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(
            "PurgedKFold: t0 and t1 must both be timestamps or both be numbers"
        ) from None

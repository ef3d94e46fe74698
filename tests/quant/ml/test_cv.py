"""PurgedKFold: no training label overlaps the test block, the embargo holds, nothing more is
thrown away, and plain K-fold leaks on the same data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import KFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from quant.errors import ValidationError
from quant.features.labels import LabelDefinition, binary_target, make_labels
from quant.ml.cv import PurgedKFold
from tests.quant.features.bars import random_bars


def label_windows(horizons: list[int]) -> pd.Series:
    """t1 by bar number: sample i's label ends horizons[i] bars later (capped at the last bar)."""
    n = len(horizons)
    t0 = np.arange(n)
    return pd.Series(np.minimum(t0 + np.array(horizons), n - 1), index=t0)


def leaks(t1: pd.Series, train: np.ndarray, test: np.ndarray) -> int:
    """Training samples whose [t0, t1] touches the test block's [first t0, last t1]."""
    t0, end = t1.index.to_numpy(), t1.to_numpy()
    start, stop = t0[test].min(), end[test].max()
    return int(((t0[train] <= stop) & (end[train] >= start)).sum())


def check_split(t1: pd.Series, embargo: int, train: np.ndarray, test: np.ndarray) -> None:
    n = len(t1)
    t0, end = t1.index.to_numpy(), t1.to_numpy()
    first, last = test[0], test[-1]
    assert np.array_equal(test, np.arange(first, last + 1))  # one contiguous block
    assert not set(train) & set(test)
    assert leaks(t1, train, test) == 0
    assert not set(train) & set(range(last + 1, last + 1 + embargo))  # the embargo bars
    # and nothing else is thrown away: before the block every label that ends before it
    # starts, after it everything from `embargo` samples past the last overlapping one on
    stop = end[test].max()
    resume = int(np.searchsorted(t0, stop, side="right")) + embargo
    expected = [i for i in range(first) if end[i] < t0[first]] + list(
        range(max(resume, last + 1), n)
    )
    assert sorted(train) == expected


@settings(max_examples=200, deadline=None)
@given(n_splits=st.integers(2, 8), embargo=st.integers(0, 10), data=st.data())
def test_no_training_label_overlaps_the_test_block(
    n_splits: int, embargo: int, data: st.DataObject
) -> None:
    n = data.draw(st.integers(n_splits, 300), label="samples")
    longest = data.draw(st.integers(0, 25), label="longest horizon")
    horizons = data.draw(
        st.lists(st.integers(0, longest), min_size=n, max_size=n), label="horizons"
    )
    t1 = label_windows(horizons)
    X = pd.DataFrame({"x": np.zeros(len(t1))}, index=t1.index)
    cv = PurgedKFold(n_splits, embargo=embargo, t1=t1)
    try:
        folds = list(cv.split(X))
    except ValidationError as exc:  # too few samples or nothing left to train on: said clearly
        assert "folds" in exc.message or "no training samples left" in exc.message
        return
    assert len(folds) == n_splits == cv.get_n_splits()
    assert sorted(np.concatenate([test for _, test in folds])) == list(range(len(t1)))
    for train, test in folds:
        check_split(t1, embargo, train, test)


@pytest.fixture(scope="module")
def labelled() -> tuple[pd.DataFrame, pd.DataFrame]:
    bars = random_bars(2_000, seed=0)
    labels = make_labels(bars, LabelDefinition(kind="forward_return", horizon=20, threshold=0.03))
    # the bar number stands in for any slowly varying feature (a long moving average, a regime)
    X = pd.DataFrame({"t": np.arange(len(labels), dtype=float)}, index=labels.index)
    return X, labels


def test_plain_kfold_leaks_and_purged_kfold_does_not(
    labelled: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    X, labels = labelled
    t1 = labels["t1"]
    for plain in (KFold(5), KFold(5, shuffle=True, random_state=0)):
        assert sum(leaks(t1, train, test) for train, test in plain.split(X)) > 0
    for train, test in PurgedKFold(5, embargo=10, t1=t1).split(X):
        assert leaks(t1, train, test) == 0
        check_split_dates(t1, train, test)


def check_split_dates(t1: pd.Series, train: np.ndarray, test: np.ndarray) -> None:
    """The same guarantee read off the timestamps: each training label ends before the test
    block starts or starts after the last test label is known."""
    start, stop = t1.index[test[0]], t1.iloc[test].max()
    before, after = t1.iloc[train] < start, t1.index[train] > stop
    assert (before | after).all()


def test_leakage_inflates_plain_kfold_scores_not_purged_ones(
    labelled: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    """A 1-nearest-neighbour model on the bar number cannot predict a random walk, yet shuffled
    K-fold scores it about 0.87: the neighbours' labels overlap the test labels. Purged K-fold
    gives no more than always guessing the majority class."""
    X, labels = labelled
    y = binary_target(labels)
    model = KNeighborsClassifier(n_neighbors=1)
    leaky = cross_val_score(model, X, y, cv=KFold(5, shuffle=True, random_state=0)).mean()
    purged = cross_val_score(model, X, y, cv=PurgedKFold(5, embargo=20), groups=labels["t1"]).mean()
    majority = max(y.mean(), 1 - y.mean())
    assert leaky > 0.8
    assert purged < majority + 0.03


def test_t1_given_as_groups_or_at_construction_gives_the_same_folds(
    labelled: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    X, labels = labelled
    a = list(PurgedKFold(4, embargo=5, t1=labels["t1"]).split(X))
    b = list(PurgedKFold(4, embargo=5).split(X, groups=labels["t1"]))
    c = list(PurgedKFold(4, embargo=5).split(X.to_numpy(), groups=labels["t1"]))
    for (ta, sa), (tb, sb), (tc, sc) in zip(a, b, c, strict=True):
        assert np.array_equal(ta, tb) and np.array_equal(sa, sb)
        assert np.array_equal(ta, tc) and np.array_equal(sa, sc)


def test_timestamps_in_any_unit_and_far_dates_work() -> None:
    """pandas keeps dates in seconds, ms, us or ns; 2300 does not fit in nanoseconds."""
    t0 = pd.date_range("2290-01-01", periods=12, freq="D", tz="UTC").as_unit("s")
    t1 = pd.Series(t0.shift(2, freq="D").as_unit("us"), index=t0)
    folds = list(PurgedKFold(3, t1=t1).split(np.zeros(12)))
    assert [test.tolist() for _, test in folds] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert folds[1][0].tolist() == [0, 1, 10, 11]


def test_mixed_kinds_of_time_are_refused() -> None:
    t0 = pd.date_range("2024-01-01", periods=6, freq="D", tz="UTC")
    naive = pd.Series(t0.tz_localize(None), index=t0)
    with pytest.raises(ValidationError, match="both have a timezone or neither"):
        list(PurgedKFold(2, t1=naive).split(np.zeros(6)))
    numbers = pd.Series(np.arange(6), index=t0)
    with pytest.raises(ValidationError, match="both be timestamps or both be numbers"):
        list(PurgedKFold(2, t1=numbers).split(np.zeros(6)))


def test_embargo_pct_rounds_up_to_whole_samples() -> None:
    cv = PurgedKFold(5, embargo_pct=0.01)
    assert cv.embargo_for(1_000) == 10 and cv.embargo_for(150) == 2 and cv.embargo_for(1) == 1
    assert PurgedKFold(5).embargo_for(1_000) == 0
    assert repr(cv) == "PurgedKFold(n_splits=5, embargo=0, embargo_pct=0.01)"


def test_embargo_drops_samples_after_the_last_test_label() -> None:
    t1 = label_windows([2] * 20)  # every label ends 2 bars later
    folds = list(PurgedKFold(4, embargo=3, t1=t1).split(np.zeros(20)))
    train, test = folds[1]  # test 5..9, its last label ends at bar 11
    assert test.tolist() == [5, 6, 7, 8, 9]
    assert train.tolist() == [
        0,
        1,
        2,
        15,
        16,
        17,
        18,
        19,
    ]  # 3, 4 and 10, 11 purged; 12-14 embargoed


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t1, X: PurgedKFold(3).split(X), "needs each sample's label end"),
        (lambda t1, X: PurgedKFold(3, t1=t1.iloc[:-1]).split(X), "t1 has 9 rows but X has 10"),
        (
            lambda t1, X: PurgedKFold(3, t1=t1).split(X.iloc[::-1]),
            "t1's index (t0) must be X's index",
        ),
        (lambda t1, X: PurgedKFold(3, t1=t1.iloc[::-1]).split(X.iloc[::-1]), "sorted by t0"),
        (lambda t1, X: PurgedKFold(3, t1=t1 - 2).split(X), "every t1 must be at or after its t0"),
        (lambda t1, X: PurgedKFold(11, t1=t1).split(X), "10 samples cannot make 11 folds"),
        (
            lambda t1, X: PurgedKFold(2, t1=t1 * 0 + 9).split(X),
            "fold 0 has no training samples left",
        ),
        (lambda t1, X: [PurgedKFold(1)], "n_splits: needs an integer of at least 2"),
        (lambda t1, X: [PurgedKFold(3, embargo=-1)], "embargo: needs a whole number"),
        (lambda t1, X: [PurgedKFold(3, embargo=2, embargo_pct=0.1)], "give one of them"),
    ],
)
def test_bad_input_gets_a_clear_error(make: object, message: str) -> None:
    t1 = label_windows([1] * 10)
    X = pd.DataFrame({"x": np.zeros(10)}, index=t1.index)
    with pytest.raises(ValidationError) as info:
        list(make(t1, X))  # type: ignore[operator]
    assert message in info.value.message

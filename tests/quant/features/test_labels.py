"""Labels by hand on tiny series, against a plain loop on random ones, and never from the
missing future."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant.errors import ValidationError
from quant.features.labels import LabelDefinition, binary_target, label_validate, make_labels
from tests.quant.features.bars import bars_from_closes


def labelled(closes: Sequence[float], **definition: object) -> pd.DataFrame:
    return make_labels(bars_from_closes(closes), LabelDefinition.model_validate(definition))


def test_forward_return_by_hand() -> None:
    closes = [100, 101, 103, 99, 104, 100]
    out = labelled(closes, kind="forward_return", horizon=2, threshold=0.02)
    days = bars_from_closes(closes).index

    assert out.index.equals(days[:4])  # the last 2 bars have no complete horizon
    assert out["label"].tolist() == [1, 0, 0, 1]
    # 100 -> 103 on day 2; 101 -> 103 is only +1.98%; 103 never +2%; 99 -> 104 on day 4
    assert out["t1"].tolist() == [days[2], days[3], days[4], days[4]]
    np.testing.assert_allclose(out["ret"], [0.03, 99 / 101 - 1, 104 / 103 - 1, 104 / 99 - 1])
    assert out["label"].dtype == np.int64


def test_forward_return_horizon_edge() -> None:
    """A threshold reached on the horizon's last bar counts; one bar later does not."""
    out = labelled([100, 100, 100, 103], kind="forward_return", horizon=2, threshold=0.02)
    assert out["label"].tolist() == [0, 1]
    days = bars_from_closes([0] * 4).index
    assert out["t1"].tolist() == [days[2], days[3]]


def test_triple_barrier_by_hand() -> None:
    closes = [100, 101, 99, 101.5, 104, 90, 100]
    out = labelled(closes, kind="triple_barrier", horizon=3, upper=0.03, lower=-0.03)
    days = bars_from_closes(closes).index

    assert out.index.equals(days[:4])
    # 100: no barrier in 3 bars (vertical); 101: 104 is +2.97%, still vertical;
    # 99: 104 (+5%) before 90 (-9%) -> upper first; 101.5: 90 (-11%) first -> lower
    assert out["label"].tolist() == [0, 0, 1, -1]
    assert out["t1"].tolist() == [days[3], days[4], days[4], days[5]]
    np.testing.assert_allclose(out["ret"], [0.015, 104 / 101 - 1, 104 / 99 - 1, 90 / 101.5 - 1])


@pytest.mark.parametrize(
    ("closes", "label", "hit"),
    [([100, 96, 105, 100], -1, 1), ([100, 105, 96, 100], 1, 1), ([100, 101, 99, 100], 0, 3)],
    ids=["lower first", "upper first", "vertical"],
)
def test_triple_barrier_takes_the_first_barrier_hit(
    closes: list[float], label: int, hit: int
) -> None:
    out = labelled(closes, kind="triple_barrier", horizon=3, upper=0.03, lower=-0.03)
    assert out["label"].tolist() == [label]
    assert out["t1"].iloc[0] == bars_from_closes(closes).index[hit]


def test_a_return_exactly_on_a_barrier_hits_it() -> None:
    """125 / 100 - 1 and 75 / 100 - 1 are exactly 0.25 and -0.25 in binary floating point."""
    barriers = {"kind": "triple_barrier", "horizon": 1, "upper": 0.25, "lower": -0.25}
    assert labelled([100, 125], **barriers)["label"].tolist() == [1]
    assert labelled([100, 75], **barriers)["label"].tolist() == [-1]
    threshold = {"kind": "forward_return", "horizon": 1, "threshold": 0.25}
    assert labelled([100, 125], **threshold)["label"].tolist() == [1]


def test_triple_barrier_with_one_barrier_left_out() -> None:
    closes = [100, 110, 94, 100]
    only_lower = labelled(closes, kind="triple_barrier", horizon=3, lower=-0.05)
    only_upper = labelled(closes, kind="triple_barrier", horizon=2, upper=0.5)
    assert only_lower["label"].tolist() == [-1]  # the +10% does not count without an upper barrier
    assert only_upper["label"].tolist() == [0, 0]


def test_series_shorter_than_the_horizon_gives_no_rows() -> None:
    out = labelled([100, 101, 102], kind="forward_return", horizon=3)
    assert out.empty and list(out.columns) == ["label", "t1", "ret"]


def test_binary_target_maps_only_the_upper_barrier_to_one() -> None:
    labels = pd.DataFrame({"label": [1, 0, -1, 1]})
    assert binary_target(labels).tolist() == [1, 0, 0, 1]
    assert binary_target(labels["label"]).tolist() == [1, 0, 0, 1]


def reference(close: np.ndarray, d: LabelDefinition) -> list[tuple[int, int, float]]:
    """Label, bars until t1 and return, by the plain loop the docstring describes."""
    upper = d.threshold if d.kind == "forward_return" else (d.upper or np.inf)
    lower = -np.inf if d.kind == "forward_return" or d.lower is None else d.lower
    rows = []
    for t in range(len(close) - d.horizon):
        label, j = 0, d.horizon
        for step in range(1, d.horizon + 1):
            r = close[t + step] / close[t] - 1
            if r >= upper or r <= lower:
                label, j = (1 if r >= upper else -1), step
                break
        rows.append((label, j, close[t + j] / close[t] - 1))
    return rows


definitions = st.one_of(
    st.builds(
        LabelDefinition,
        kind=st.just("forward_return"),
        horizon=st.integers(1, 8),
        threshold=st.floats(0.001, 0.1),
    ),
    st.builds(
        LabelDefinition,
        kind=st.just("triple_barrier"),
        horizon=st.integers(1, 8),
        upper=st.floats(0.001, 0.1),
        lower=st.none() | st.floats(-0.1, -0.001),
    ),
)


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(st.floats(-0.05, 0.05), min_size=1, max_size=40),
    definition=definitions,
    data=st.data(),
)
def test_labels_match_the_plain_loop_and_ignore_bars_after_t1(
    steps: list[float], definition: LabelDefinition, data: st.DataObject
) -> None:
    close = 100 * np.exp(np.cumsum(steps))
    bars = bars_from_closes(close)
    out = make_labels(bars, definition)

    expected = reference(close, definition)
    assert len(out) == max(len(close) - definition.horizon, 0)
    assert out["label"].tolist() == [label for label, _, _ in expected]
    positions = bars.index.get_indexer(pd.DatetimeIndex(out["t1"]))
    assert (positions - np.arange(len(out))).tolist() == [j for _, j, _ in expected]
    np.testing.assert_allclose(out["ret"], [r for _, _, r in expected], rtol=1e-12)

    if len(out):  # rewriting every bar after a row's t1 leaves that row alone
        row = data.draw(st.integers(0, len(out) - 1))
        end = int(positions[row])
        changed = close.copy()
        changed[end + 1 :] = data.draw(
            st.lists(
                st.floats(1, 1000), min_size=len(close) - end - 1, max_size=len(close) - end - 1
            )
        )
        again = make_labels(bars_from_closes(changed), definition)
        assert again.iloc[row].equals(out.iloc[row])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "forward_return", "horizon": 5, "upper": 0.02}, "triple_barrier settings"),
        ({"kind": "triple_barrier", "horizon": 5}, "needs an upper or a lower barrier"),
        (
            {"kind": "triple_barrier", "horizon": 5, "upper": 0.02, "lower": 0.02},
            "lower: Input should be less than 0",
        ),
        ({"kind": "forward_return", "horizn": 5}, "horizn: unknown key (did you mean 'horizon'?)"),
        (
            {"kind": "forward", "horizon": 5},
            "kind: Input should be 'forward_return' or 'triple_barrier'",
        ),
        (
            {"kind": "forward_return", "horizon": 0},
            "horizon: Input should be greater than or equal to 1",
        ),
    ],
)
def test_label_definition_errors_name_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        label_validate(data, source="train.yaml")
    assert info.value.message.startswith("train.yaml: ")
    assert message in info.value.message


def test_bars_need_a_positive_close() -> None:
    bars = bars_from_closes([100, 0, 101])
    with pytest.raises(ValidationError, match="close must be finite and above 0"):
        make_labels(bars, LabelDefinition(kind="forward_return", horizon=1))

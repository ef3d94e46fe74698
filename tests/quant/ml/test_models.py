"""TradingModel implementations and model bundles, without a database."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from quant.errors import NotFoundError, ValidationError
from quant.ml.artifacts import ModelBundle, file_hash, load_bundle
from quant.ml.base import BASE_VALUE, LABEL, TradingModel, model_class
from quant.ml.lightgbm_model import LightGBMModel
from quant.ml.sklearn_model import LogisticModel
from tests.quant.ml.support import FAST_LGBM, bundle_file

KINDS = ("lightgbm", "sklearn_logistic")
PARAMS = {"lightgbm": FAST_LGBM, "sklearn_logistic": {}}


def dataset(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Five features; the label depends on two of them (and noise)."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n, 5)), columns=["a", "b", "c", "d", "e"])
    signal = x["a"] + 0.5 * x["b"] + rng.normal(scale=0.7, size=n)
    return x.assign(**{LABEL: (signal > 0).astype(int)})


def fitted(kind: str, data: pd.DataFrame | None = None) -> TradingModel:
    return model_class(kind)().fit(dataset() if data is None else data, PARAMS[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_contributions_sum_to_the_raw_score_of_each_row(kind: str) -> None:
    model = fitted(kind)
    features = dataset(50, seed=1).drop(columns=[LABEL])

    explained = model.explain(features)
    predicted = model.predict(features)

    assert list(explained.contributions.columns) == ["a", "b", "c", "d", "e", BASE_VALUE]
    assert explained.contributions.index.equals(features.index)
    np.testing.assert_allclose(explained.raw_score(), predicted.raw_score, rtol=0, atol=1e-9)
    np.testing.assert_allclose(predicted.probability, 1 / (1 + np.exp(-predicted.raw_score)))
    assert (predicted.label == (predicted.probability >= 0.5)).all()


@pytest.mark.parametrize("kind", KINDS)
def test_global_importance_finds_the_features_the_label_depends_on(kind: str) -> None:
    importance = fitted(kind).explain(dataset(300, seed=2).drop(columns=[LABEL])).global_importance

    ranked = sorted(importance, key=lambda name: -importance[name])
    assert ranked[:2] == ["a", "b"]
    assert set(importance) == {"a", "b", "c", "d", "e"}


def test_logistic_contributions_are_coefficient_times_standardized_deviation() -> None:
    data = dataset()
    model = fitted("sklearn_logistic", data)
    x = data.drop(columns=[LABEL])
    reference = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, tol=1e-6))
    reference.fit(x.to_numpy(), data[LABEL].to_numpy())

    explained = model.explain(x.iloc[:5])

    np.testing.assert_allclose(
        model.predict(x).probability, reference.predict_proba(x.to_numpy())[:, 1], atol=1e-9
    )
    assert isinstance(model, LogisticModel)
    z = (x.iloc[:5].to_numpy() - x.to_numpy().mean(axis=0)) / x.to_numpy().std(axis=0)
    np.testing.assert_allclose(explained.contributions[list("abcde")], z * model.coef, atol=1e-12)
    assert (explained.contributions[BASE_VALUE] == model.intercept).all()


@pytest.mark.parametrize("kind", KINDS)
def test_training_is_deterministic(kind: str) -> None:
    assert fitted(kind).state() == fitted(kind).state()


def test_the_lightgbm_seed_matters_when_sampling() -> None:
    params = {**FAST_LGBM, "bagging_fraction": 0.5, "bagging_freq": 1}
    first = LightGBMModel().fit(dataset(), {**params, "seed": 1})
    second = LightGBMModel().fit(dataset(), {**params, "seed": 2})

    assert first.state() != second.state()


@pytest.mark.parametrize("kind", KINDS)
def test_one_row_at_a_time_gives_the_batch_numbers_to_the_bit(kind: str) -> None:
    """The strategy's event path predicts row by row, its vectorized path all rows at once."""
    model = fitted(kind)
    x = dataset(40, seed=3).drop(columns=[LABEL]).to_numpy()

    batch = model.probability(x)
    single = np.array([model.probability(x[i : i + 1])[0] for i in range(len(x))])

    assert np.array_equal(batch, single)


@pytest.mark.parametrize("kind", KINDS)
def test_state_round_trip_predicts_the_same(kind: str) -> None:
    model = fitted(kind)
    x = dataset(30, seed=4).drop(columns=[LABEL])
    state = json.loads(json.dumps(model.state()))

    rebuilt = type(model).from_state(
        state, feature_names=model.feature_names, params=model.params.model_dump()
    )

    assert np.array_equal(rebuilt.predict(x).probability, model.predict(x).probability)


def test_unknown_and_bad_params_are_named() -> None:
    with pytest.raises(ValidationError) as caught:
        LightGBMModel().fit(dataset(), {"num_leavs": 7, "learning_rate": 0})
    message = caught.value.message
    assert "num_leavs: unknown parameter (did you mean 'num_leaves'?)" in message
    assert "learning_rate: Input should be greater than 0" in message
    with pytest.raises(ValidationError, match="class_weight"):
        LogisticModel().fit(dataset(), {"class_weight": "even"})


def test_unknown_kind_is_named() -> None:
    with pytest.raises(ValidationError, match=r"unknown model kind 'lightgbn' \(did you mean"):
        model_class("lightgbn")


def test_training_data_with_one_class_is_refused() -> None:
    data = dataset().assign(**{LABEL: 0})
    with pytest.raises(ValidationError, match="only one class"):
        fitted("lightgbm", data)


def test_labels_of_minus_one_count_as_negative() -> None:
    data = dataset()
    data[LABEL] = data[LABEL].replace(0, -1)

    assert fitted("sklearn_logistic", data).state() == fitted("sklearn_logistic").state()


def test_missing_and_nan_features_are_refused() -> None:
    model = fitted("sklearn_logistic")
    x = dataset(10, seed=5).drop(columns=[LABEL])

    with pytest.raises(ValidationError, match="lack the column"):
        model.predict(x.drop(columns=["c"]))
    x.iloc[3, 1] = np.nan
    with pytest.raises(ValidationError, match="NaN"):
        model.predict(x)


# --- bundles -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_bundle_file_round_trips(kind: str, tmp_path: Path) -> None:
    path = bundle_file(tmp_path, kind)

    bundle = load_bundle(path, sha256=file_hash(path.read_bytes()))

    assert bundle.kind == kind and bundle.timeframe == "1Day"
    assert bundle.label["horizon"] == 5 and bundle.feature_set["name"] == "ml_test"
    model = bundle.model()
    assert model.fitted and model.feature_names == bundle.feature_names
    assert b"pickle" not in path.read_bytes()


def test_an_edited_bundle_is_refused(tmp_path: Path) -> None:
    path = bundle_file(tmp_path)
    document = json.loads(path.read_bytes())
    document["payload"]["params"]["num_leaves"] = 31
    path.write_text(json.dumps(document))

    with pytest.raises(ValidationError, match="content hash mismatch"):
        load_bundle(path)


def test_a_bundle_with_another_file_hash_is_refused(tmp_path: Path) -> None:
    path = bundle_file(tmp_path)

    with pytest.raises(ValidationError, match="does not match the expected"):
        load_bundle(path, sha256="0" * 64)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x80\x04not json", "not a JSON bundle"),
        (b'{"format": "other"}', "not a quant-model-bundle file"),
        (b'{"format": "quant-model-bundle", "format_version": 99}', "format version 99"),
    ],
)
def test_files_that_are_not_bundles_are_refused(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)

    with pytest.raises(ValidationError, match=message):
        load_bundle(path)


def test_a_missing_bundle_is_named(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"nowhere\.json"):
        load_bundle(tmp_path / "nowhere.json")


def test_bundle_bytes_are_stable(tmp_path: Path) -> None:
    path = bundle_file(tmp_path)
    bundle = ModelBundle.from_bytes(path.read_bytes())

    assert bundle.to_bytes() == path.read_bytes()

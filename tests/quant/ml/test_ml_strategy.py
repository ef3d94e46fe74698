"""The ``ml_signal`` strategy: event and vectorized paths trade alike, bad params and bundles
are refused, and the issue's end to end: train, explain, backtest (engine and stored run)."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from backtests import services
from backtests.models import BacktestTrade, RunStatus
from marketdata.domain import Timeframe
from marketdata.selectors import bars_frame
from quant.backtest import BacktestConfig, BacktestEngine, FillAt, MarketData
from quant.backtest.sample import random_walk_bars
from quant.errors import NotFoundError, ValidationError
from quant.features.definitions import compute_features, feature_set_validate
from quant.ml.artifacts import ModelBundle, file_hash
from quant.ml.base import BASE_VALUE
from quant.strategies.config import config_validate
from research import training
from research.feature_store import feature_set_ensure
from research.models import ModelStatus
from research.services import strategy_version_ensure
from tests.backtests.conftest import reviewed
from tests.quant.backtest.test_equivalence import assert_identical, frames, run_both
from tests.quant.ml.support import FAST_LGBM, FEATURES, LABEL_DEF, START, bundle_file, ingest_bars

LEVELS = {"entry_probability": 0.55, "exit_probability": 0.45}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("bundles")
    return {kind: bundle_file(directory, kind) for kind in ("lightgbm", "sklearn_logistic")}


def config(artifact: Path | str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "ml_test",
        "class": "ml_signal",
        "symbols": ["AAA"],
        "params": {"artifact": str(artifact), **LEVELS},
    }
    data.update(changes)
    return data


@pytest.mark.parametrize("kind", ["lightgbm", "sklearn_logistic"])
@pytest.mark.parametrize(
    ("seed", "fill_at", "participation", "allow_short"),
    [
        (13, FillAt.CLOSE, None, False),
        (15, FillAt.NEXT_OPEN, Decimal("0.001"), True),
    ],
)
def test_event_and_vectorized_paths_give_identical_results(
    bundles: dict[str, Path],
    kind: str,
    seed: int,
    fill_at: FillAt,
    participation: Decimal | None,
    allow_short: bool,
) -> None:
    """Two symbols on different calendars (NaN gaps, a late start) and recursive features
    (RSI, MACD, ATR): the event path's per-bar features equal the vectorized ones."""
    data = MarketData.from_frames(frames(260, seed, two=True, late_start=40))
    backtest = BacktestConfig(fill_at=fill_at, max_volume_participation=participation)

    event, vector = run_both(
        "ml_signal",
        {"artifact": str(bundles[kind]), **LEVELS},
        data,
        backtest,
        allow_short=allow_short,
        sizing={"mode": "percent", "percent": 50},
    )

    assert len(event.trades) >= 4  # not a comparison of two empty runs
    assert {t.symbol for t in event.trades} == {"AAA", "BBB"}
    assert {t.side for t in event.trades} == {"long"}  # never short, even when allowed
    assert_identical(event, vector)


def test_targets_follow_the_model_and_never_look_ahead(bundles: dict[str, Path]) -> None:
    strategy = config_validate(config(bundles["lightgbm"])).build()
    bars = random_walk_bars(200, seed=5, volatility=0.02)
    columns = {c: bars[c].to_numpy() for c in bars.columns}

    targets = strategy.signals_frame({"AAA": columns})["AAA"]
    first = strategy.signals_frame({"AAA": {c: v[:120] for c, v in columns.items()}})["AAA"]

    np.testing.assert_array_equal(targets[:120], first)  # later bars change nothing before
    loaded = strategy.loaded  # type: ignore[attr-defined]
    features = compute_features(bars, loaded.definition)[list(loaded.bundle.feature_names)]
    probability = loaded.model.probability(features.to_numpy()[-1:])[0]
    expected = 1.0 if probability > 0.55 else 0.0 if probability < 0.45 else np.nan
    np.testing.assert_array_equal(targets[-1:], [expected])
    assert np.isnan(targets[: loaded.warmup]).all()
    assert {0.0, 1.0} <= set(targets[~np.isnan(targets)])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"exit_probability": 0.7}, "must not be above entry_probability"),
        ({"entry_probability": 1.5}, "entry_probability"),
        ({"artifact": ""}, "params.artifact"),
        ({"artifact_sha256": "abc"}, "params.artifact_sha256"),
        ({"entry_probabilty": 0.7}, "did you mean 'entry_probability'"),
    ],
)
def test_bad_params_are_named(
    bundles: dict[str, Path], params: dict[str, Any], message: str
) -> None:
    data = config(bundles["lightgbm"])
    data["params"].update(params)

    with pytest.raises(ValidationError, match=message):
        config_validate(data)


def test_a_missing_artifact_is_named_when_the_strategy_is_built(tmp_path: Path) -> None:
    config_validate(config(tmp_path / "gone.json"))  # a config may name a model to come
    with pytest.raises(NotFoundError, match=r"gone\.json"):
        config_validate(config(tmp_path / "gone.json")).build()


def test_a_model_trained_on_other_bars_is_refused(bundles: dict[str, Path]) -> None:
    with pytest.raises(ValidationError, match="trained on 1Day bars; the strategy runs on 1Hour"):
        config_validate(config(bundles["lightgbm"], timeframe="1Hour")).build()


def test_a_pinned_hash_refuses_another_file(bundles: dict[str, Path]) -> None:
    path = bundles["sklearn_logistic"]
    data = config(path)
    data["params"]["artifact_sha256"] = file_hash(path.read_bytes())
    config_validate(data).build()

    data["params"]["artifact_sha256"] = "0" * 64
    with pytest.raises(ValidationError, match="does not match the expected"):
        config_validate(data).build()


def test_a_bundle_from_other_feature_code_is_refused(
    bundles: dict[str, Path], tmp_path: Path
) -> None:
    bundle = ModelBundle.from_bytes(bundles["lightgbm"].read_bytes())
    path = tmp_path / "old.json"
    path.write_bytes(ModelBundle(**{**bundle.__dict__, "feature_set_version": "0" * 64}).to_bytes())

    with pytest.raises(ValidationError, match="computed by other feature code"):
        config_validate(config(path)).build()


def test_the_strategy_module_needs_no_django_settings(bundles: dict[str, Path]) -> None:
    code = (
        "import sys\n"
        "from quant.strategies.config import config_validate\n"
        f"s = config_validate({config(bundles['lightgbm'])!r}).build()\n"
        "assert not [m for m in sys.modules if m.startswith(('django.db', 'django.apps'))]\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)

    assert done.returncode == 0, done.stderr


# --- end to end: the "done when" ---------------------------------------------------


@pytest.mark.django_db
def test_train_explain_and_backtest_end_to_end(settings: SettingsWrapper, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    ingest_bars(("SPY", "QQQ"), count=400)
    version = feature_set_ensure(definition=feature_set_validate(FEATURES))

    began = time.perf_counter()
    artifact = training.model_train(
        name="e2e",
        kind="lightgbm",
        feature_set_version=version,
        symbols=["SPY", "QQQ"],
        timeframe="1Day",
        start=START,
        end=START + timedelta(days=400),  # the first ~275 sessions; the rest is out of sample
        label=LABEL_DEF,
        params=FAST_LGBM,
        n_splits=4,
        embargo_bars=5,
    )
    trained_in = time.perf_counter() - began
    assert artifact.status == ModelStatus.READY, artifact.error
    assert trained_in < 10, f"training took {trained_in:.1f} s"

    # explain the latest prediction: contributions add up to the model's raw score
    bundle = training.artifact_bundle_load(artifact=artifact)
    model = bundle.model()
    bars = bars_frame(symbol="SPY", timeframe=Timeframe.DAY_1)
    latest = compute_features(bars, feature_set_validate(bundle.feature_set)).iloc[-1:]
    explained = model.explain(latest[list(bundle.feature_names)])
    predicted = model.predict(latest[list(bundle.feature_names)])
    contributions = explained.contributions.iloc[0]
    assert contributions.drop(BASE_VALUE).abs().sum() > 0
    assert contributions.sum() == pytest.approx(predicted.raw_score[0], abs=1e-9)
    assert predicted.probability[0] == pytest.approx(1 / (1 + np.exp(-contributions.sum())))

    # backtest the stored artifact: through the engine (both paths) and as a stored run
    strategy_config = config_validate(
        config(
            artifact.file,
            symbols=["SPY"],
            params={"artifact": artifact.file, "artifact_sha256": artifact.file_hash, **LEVELS},
        )
    )
    data = services.market_data_load(symbols=("SPY",), timeframe="1Day", start=None, end=None)
    engine = BacktestEngine()
    event = engine.run(strategy_config.build(), data, BacktestConfig(), mode="event")
    vector = engine.run(strategy_config.build(), data, BacktestConfig(), mode="vectorized")
    assert len(event.trades) >= 3
    assert_identical(event, vector)

    strategy_version, _ = strategy_version_ensure(config=strategy_config, source="file")
    reviewed(strategy_version)
    run = services.backtest_run_create(
        strategy_version=strategy_version, config=BacktestConfig(), mode="vectorized"
    )
    outcome = services.backtest_run_execute(run_id=run.pk)

    assert outcome.run.status == RunStatus.SUCCEEDED, outcome.run.error_message
    stored = list(BacktestTrade.objects.filter(run=run).order_by("seq"))
    assert [(t.entry_time, t.exit_time, t.pnl) for t in stored] == [
        (t.entry_time, t.exit_time, t.pnl) for t in event.trades
    ]
    assert outcome.run.final_equity == event.final_equity

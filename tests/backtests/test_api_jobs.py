"""Starting and reading walk-forward runs and model trainings through /v1 (tasks run eagerly
in process, as the worker would run them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from research.models import StrategyVersion
from tests.support.api import client_for, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager(settings: Any, django_capture_on_commit_callbacks: Any) -> Any:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    return django_capture_on_commit_callbacks


@pytest.fixture
def operator() -> Client:
    return client_for(make_user("operator"))


def test_walk_forward_start_poll_and_read(
    stored_bars: dict[str, int], sma_version: StrategyVersion, eager: Any, operator: Client
) -> None:
    body = {
        "strategy_id": sma_version.strategy_id,
        "in_sample_days": 120,
        "out_of_sample_days": 40,
        "step_days": 40,
        "parameter_grid": {"fast": [5, 10], "slow": [20, 40]},
    }
    with eager(execute=True):
        response = operator.post("/v1/walk-forward", body, content_type="application/json")
    assert response.status_code == 202, response.json()
    run = operator.get(response["Location"]).json()["data"]
    assert run["status"] == "succeeded", run["error_message"]
    assert run["progress"] == 1.0 and len(run["windows"]) >= 2
    assert run["windows"][0]["best_params"] is not None and run["result"] is not None
    listed = operator.get("/v1/walk-forward").json()
    assert [r["id"] for r in listed["data"]] == [run["id"]]
    bad = operator.post(
        "/v1/walk-forward",
        {**body, "parameter_grid": {"fast": [5], "nonsense": [1]}},
        content_type="application/json",
    )
    assert bad.status_code == 422 and "nonsense" in bad.json()["error"]["message"]


def test_model_training_start_poll_and_read(
    eager: Any, operator: Client, settings: Any, tmp_path: Path
) -> None:
    from quant.features.definitions import feature_set_validate
    from research.feature_store import feature_set_ensure
    from tests.quant.ml.support import FAST_LGBM, FEATURES, START, ingest_bars

    settings.MEDIA_ROOT = tmp_path / "media"
    ingest_bars()
    version = feature_set_ensure(definition=feature_set_validate(FEATURES))
    body = {
        "name": "api_model",
        "kind": "lightgbm",
        "feature_set": version.feature_set.name,
        "symbols": ["SPY", "QQQ"],
        "start": START.date().isoformat(),
        "end": (START.date().replace(year=START.year + 2)).isoformat(),
        "label": "forward_return:horizon=5",
        "params": FAST_LGBM,
        "n_splits": 4,
        "embargo_bars": 3,
    }
    with eager(execute=True):
        response = operator.post("/v1/models", body, content_type="application/json")
    assert response.status_code == 202, response.json()
    model = operator.get(response["Location"]).json()["data"]
    assert model["status"] == "ready", model["error"]
    assert model["validation"]["n_splits"] == 4 and model["feature_names"]
    assert model["file_hash"]
    unknown = operator.post(
        "/v1/models", {**body, "feature_set": "nope"}, content_type="application/json"
    )
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]["message"]
    bad_label = operator.post(
        "/v1/models", {**body, "label": "forward_return:5"}, content_type="application/json"
    )
    assert bad_label.status_code == 422

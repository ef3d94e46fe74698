"""``POST /v1/runs`` and ``POST /v1/walk-forward`` with ``Idempotency-Key``: a retry gets the
first request's run (queued once); the same key with a different request is refused.

Before: each retry stored and queued another run."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from pytest_django.fixtures import DjangoCaptureOnCommitCallbacks as OnCommit

from backtests.models import BacktestRun, WalkForwardRun
from research.models import StrategyVersion
from tests.support.api import client_for, make_user

pytestmark = pytest.mark.django_db

KEY = "run-2026-12-08-0001"


@pytest.fixture
def operator(db: None) -> Client:
    return client_for(make_user("operator"))


def _post(client: Client, url: str, body: dict[str, Any], key: str = KEY) -> Any:
    return client.post(url, body, content_type="application/json", headers={"Idempotency-Key": key})


@pytest.mark.parametrize(
    ("url", "model", "extra"),
    [
        ("/v1/runs", BacktestRun, {}),
        (
            "/v1/walk-forward",
            WalkForwardRun,
            {
                "in_sample_days": 120,
                "out_of_sample_days": 40,
                "step_days": 40,
                "parameter_grid": {"fast": [5, 10]},
            },
        ),
    ],
)
def test_a_retry_returns_the_first_run_queued_once(
    stored_bars: dict[str, int],
    sma_version: StrategyVersion,
    operator: Client,
    django_capture_on_commit_callbacks: OnCommit,
    url: str,
    model: Any,
    extra: dict[str, Any],
) -> None:
    body = {"strategy_id": sma_version.strategy_id, **extra}
    with django_capture_on_commit_callbacks() as queued:
        first = _post(operator, url, body)
        again = _post(operator, url, body)

    assert first.status_code == again.status_code == 202, first.content
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    assert again["Location"] == first["Location"] and again["Idempotent-Replayed"] == "true"
    assert model.objects.count() == 1
    assert len(queued) == 1  # one task sent, for the first request only

    changed = _post(operator, url, {**body, "initial_capital": "5000"})
    assert changed.status_code == 422
    assert changed.json()["error"]["code"] == "idempotency_key_reused"
    assert model.objects.count() == 1

"""/healthz: 200 naming every component when all are up, 503 naming the one that is down."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.db import DatabaseError
from django.test import Client, override_settings
from django.utils import timezone

from monitoring import health
from monitoring.health import BEAT, WORKER, heartbeat_record
from monitoring.models import ComponentHeartbeat

pytestmark = pytest.mark.django_db


def fresh_heartbeats() -> None:
    heartbeat_record(component=WORKER, instance="worker@test")
    heartbeat_record(component=BEAT, instance="beat@test")


def test_all_components_up_answers_200(client: Client) -> None:
    fresh_heartbeats()
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["components"]) == {"database", "job_queue", "worker", "beat", "jobs"}
    assert all(c["healthy"] for c in body["components"].values())


def test_a_silent_worker_answers_503_naming_it(client: Client) -> None:
    fresh_heartbeats()
    ComponentHeartbeat.objects.filter(component=WORKER).update(
        last_seen=timezone.now() - timedelta(minutes=5)
    )
    response = client.get("/healthz")
    assert response.status_code == 503
    components = response.json()["components"]
    assert components["worker"] == {"name": "worker", "healthy": False}
    assert components["database"]["healthy"] is True
    # the detail is for signed-in callers (/v1/health), from the same check
    worker = health.check_heartbeat(WORKER, timedelta(seconds=60))
    assert "worker@test last seen 300 s ago" in worker.detail


def test_no_worker_ever_seen_answers_503(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["components"]["worker"] == {"name": "worker", "healthy": False}


def test_an_unwritable_filesystem_queue_answers_503(client: Client, tmp_path: Path) -> None:
    fresh_heartbeats()
    missing = tmp_path / "gone"
    with override_settings(
        CELERY_BROKER_URL="filesystem://",
        CELERY_BROKER_TRANSPORT_OPTIONS={"data_folder_in": str(missing)},
    ):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["components"]["job_queue"]["healthy"] is False


def test_a_broken_database_answers_503(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_cursor(*args: object, **kwargs: object) -> None:
        raise DatabaseError("connection refused")

    fresh_heartbeats()
    monkeypatch.setattr("monitoring.health.connection.cursor", broken_cursor)
    response = client.get("/healthz")
    assert response.status_code == 503
    components = response.json()["components"]
    assert components["database"] == {"name": "database", "healthy": False}
    assert components["worker"] == {"name": "worker", "healthy": False}
    assert "connection refused" not in response.content.decode()


def test_a_redis_broker_is_checked_for_real(redis_url: str) -> None:
    from config.celery import app

    with override_settings(CELERY_BROKER_URL=redis_url):
        app.conf.broker_url = redis_url
        try:
            assert health.check_job_queue().healthy
            app.conf.broker_url = "redis://127.0.0.1:1/0"
            with override_settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0"):
                down = health.check_job_queue(timeout=0.5)
        finally:
            app.conf.broker_url = "filesystem://"
    assert not down.healthy and "broker unreachable" in down.detail


def test_healthz_names_no_host_broker_url_or_error_to_anyone(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the unauthenticated probe showed each component's detail: the broker URL
    (with its password), the workers' host names and raw database errors naming the host."""
    heartbeat_record(component=WORKER, instance="worker@ip-10-1-2-3.internal:4242")
    heartbeat_record(component=BEAT, instance="beat@ip-10-1-2-4.internal:77")

    def broker_down(timeout: float = 2.0) -> health.ComponentStatus:
        return health.ComponentStatus(
            "job_queue", False, "broker unreachable: redis://:s3cret@redis.internal:6379/0"
        )

    monkeypatch.setattr(
        "monitoring.views.platform_health",
        lambda: [
            health.check_database(),
            broker_down(),
            health.check_heartbeat(WORKER, timedelta(seconds=60)),
            health.check_heartbeat(BEAT, timedelta(seconds=60)),
        ],
    )
    response = client.get("/healthz")
    assert response.status_code == 503
    text = response.content.decode()
    for secret in ("redis", "s3cret", "internal", "10-1-2", "postgresql", "worker@"):
        assert secret not in text, secret
    assert response.json() == {
        "status": "unavailable",
        "components": {
            "database": {"name": "database", "healthy": True},
            "job_queue": {"name": "job_queue", "healthy": False},
            "worker": {"name": "worker", "healthy": True},
            "beat": {"name": "beat", "healthy": True},
        },
    }


def test_a_check_that_breaks_is_its_component_down_not_a_500(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh_heartbeats()

    def broken() -> health.ComponentStatus:
        raise RuntimeError("the jobs query failed")

    monkeypatch.setattr(health, "EXTRA_CHECKS", [("jobs", broken)])
    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["components"]["jobs"] == {"name": "jobs", "healthy": False}
    assert health.platform_health()[-1].detail == "check failed: RuntimeError"

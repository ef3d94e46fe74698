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
    assert components["worker"]["healthy"] is False
    assert "worker@test last seen 300 s ago" in components["worker"]["detail"]
    assert components["database"]["healthy"] is True


def test_no_worker_ever_seen_answers_503(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "no worker has reported yet" in response.json()["components"]["worker"]["detail"]


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
    assert components["database"] == {
        "name": "database",
        "healthy": False,
        "detail": "DatabaseError: connection refused",
    }
    assert components["worker"]["detail"] == "database down"


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

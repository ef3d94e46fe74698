"""alert_raise groups repeats of an open key, escalates on a higher severity, hands delivery
to the worker only after the commit, and never lets the job queue break the caller."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import structlog
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from monitoring import tasks
from monitoring.models import Alert, AlertSeverity
from monitoring.services import alert_acknowledge, alert_raise
from quant.errors import ValidationError

pytestmark = pytest.mark.django_db

Enqueued = list[tuple[int, str]]
from pytest_django.fixtures import DjangoCaptureOnCommitCallbacks as OnCommit  # noqa: E402


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> Enqueued:
    """Deliveries handed to the job queue, as (alert id, severity); nothing is sent."""
    sent: Enqueued = []
    lock = threading.Lock()

    def apply_async(args: tuple[int, str], **options: Any) -> None:
        with lock:
            sent.append(args)

    monkeypatch.setattr(tasks.deliver_alert, "apply_async", apply_async)
    return sent


@pytest.fixture
def user() -> User:
    return User.objects.create(username="operator")


def raise_kill_switch(severity: str = "critical", **kwargs: Any) -> Alert:
    return alert_raise(
        severity=severity, source="risk.kill_switch", message="Kill switch activated", **kwargs
    )


def test_a_first_raise_stores_the_alert_and_notifies_after_commit(
    enqueued: Enqueued, django_capture_on_commit_callbacks: OnCommit
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        alert = raise_kill_switch(details={"drawdown": "10.4%"})
        assert enqueued == []  # not before the commit

    alert.refresh_from_db()
    assert alert.severity == AlertSeverity.CRITICAL
    assert alert.source == "risk.kill_switch"
    assert alert.key == "risk.kill_switch: Kill switch activated"
    assert alert.count == 1 and alert.first_seen == alert.last_seen
    assert alert.details == {"drawdown": "10.4%"}
    assert not alert.acknowledged
    assert enqueued == [(alert.pk, "critical")]


def test_severity_accepts_the_enum_and_any_case(enqueued: Enqueued) -> None:
    assert raise_kill_switch(AlertSeverity.WARNING).severity == "warning"
    assert alert_raise(severity="INFO", source="s", message="m").severity == "info"


def test_an_unknown_severity_is_refused_and_nothing_is_stored() -> None:
    with pytest.raises(ValidationError, match="unknown alert severity 'fatal'"):
        raise_kill_switch("fatal")
    assert not Alert.objects.exists()


def test_details_with_decimals_and_times_are_stored(enqueued: Enqueued) -> None:
    from decimal import Decimal

    moment = timezone.now().replace(microsecond=123000)
    alert = raise_kill_switch(details={"limit": Decimal("0.02"), "at": moment})
    alert.refresh_from_db()
    assert alert.details == {"limit": "0.02", "at": moment.isoformat()[:23] + "Z"}


def test_a_repeat_within_the_window_is_counted_not_notified(
    enqueued: Enqueued, django_capture_on_commit_callbacks: OnCommit
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = raise_kill_switch()
    with django_capture_on_commit_callbacks(execute=True):
        second = raise_kill_switch(details={"attempt": 2})
        third = raise_kill_switch(details={"attempt": 3})

    assert first.pk == second.pk == third.pk
    assert Alert.objects.count() == 1
    stored = Alert.objects.get()
    assert stored.count == 3
    assert stored.last_seen > stored.first_seen
    assert stored.details == {"attempt": 3}
    assert enqueued == [(first.pk, "critical")]


def test_a_custom_key_groups_different_messages_showing_the_latest(enqueued: Enqueued) -> None:
    for n in (1, 2):
        alert = alert_raise(
            severity="warning",
            source="trading.reconciliation",
            message=f"AAPL position differs by {n}",
            key="reconciliation:AAPL",
        )
    assert alert.count == 2
    assert Alert.objects.get().message == "AAPL position differs by 2"


def test_different_keys_make_different_alerts(enqueued: Enqueued) -> None:
    raise_kill_switch()
    alert_raise(severity="critical", source="risk.kill_switch", message="Kill switch reset")
    assert Alert.objects.count() == 2


def test_a_repeat_after_the_window_opens_a_new_alert(
    settings: SettingsWrapper, enqueued: Enqueued, django_capture_on_commit_callbacks: OnCommit
) -> None:
    settings.ALERT_GROUP_WINDOW_SECONDS = 60
    with django_capture_on_commit_callbacks(execute=True):
        old = raise_kill_switch()
    Alert.objects.filter(pk=old.pk).update(
        first_seen=timezone.now() - timedelta(seconds=120),
        last_seen=timezone.now() - timedelta(seconds=61),
    )
    with django_capture_on_commit_callbacks(execute=True):
        new = raise_kill_switch()

    assert new.pk != old.pk and new.count == 1
    assert enqueued == [(old.pk, "critical"), (new.pk, "critical")]


def test_the_window_counts_from_the_last_repeat(
    settings: SettingsWrapper, enqueued: Enqueued
) -> None:
    settings.ALERT_GROUP_WINDOW_SECONDS = 60
    old = raise_kill_switch()
    Alert.objects.filter(pk=old.pk).update(
        first_seen=timezone.now() - timedelta(hours=1),
        last_seen=timezone.now() - timedelta(seconds=59),
    )
    assert raise_kill_switch().pk == old.pk


def test_a_higher_severity_escalates_the_alert_and_notifies_again(
    enqueued: Enqueued, django_capture_on_commit_callbacks: OnCommit
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        alert = raise_kill_switch("info")
        raise_kill_switch("info")
    with django_capture_on_commit_callbacks(execute=True):
        escalated = raise_kill_switch("critical")

    assert escalated.pk == alert.pk
    stored = Alert.objects.get()
    assert (stored.severity, stored.count) == ("critical", 3)
    assert enqueued == [(alert.pk, "info"), (alert.pk, "critical")]


def test_a_lower_severity_repeat_is_counted_without_downgrading(
    enqueued: Enqueued, django_capture_on_commit_callbacks: OnCommit
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        raise_kill_switch("critical")
        raise_kill_switch("warning")
        raise_kill_switch("info")

    stored = Alert.objects.get()
    assert (stored.severity, stored.count) == ("critical", 3)
    assert len(enqueued) == 1


def test_acknowledge_records_who_and_when(user: User, enqueued: Enqueued) -> None:
    alert = raise_kill_switch()
    before = timezone.now()

    acknowledged = alert_acknowledge(alert=alert, user=user)

    assert acknowledged.acknowledged_by == user
    assert acknowledged.acknowledged_at is not None and acknowledged.acknowledged_at >= before
    alert.refresh_from_db()
    assert alert.acknowledged


def test_acknowledging_twice_keeps_the_first(user: User, enqueued: Enqueued) -> None:
    other = User.objects.create(username="second")
    alert = raise_kill_switch()
    first = alert_acknowledge(alert=alert, user=user)
    again = alert_acknowledge(alert=alert, user=other)
    assert again.acknowledged_by == user
    assert again.acknowledged_at == first.acknowledged_at


def test_a_raise_after_acknowledgement_opens_a_new_alert_and_notifies(
    user: User, enqueued: Enqueued, django_capture_on_commit_callbacks: OnCommit
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        old = raise_kill_switch()
    alert_acknowledge(alert=old, user=user)
    with django_capture_on_commit_callbacks(execute=True):
        new = raise_kill_switch()

    assert new.pk != old.pk
    assert [pk for pk, _ in enqueued] == [old.pk, new.pk]


def test_a_rolled_back_caller_leaves_no_alert_and_sends_nothing(
    enqueued: Enqueued, django_capture_on_commit_callbacks: OnCommit
) -> None:
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):  # noqa: SIM117
        with transaction.atomic():
            raise_kill_switch()
            raise RuntimeError("kill switch activation failed")
    assert not Alert.objects.exists()
    assert enqueued == []


def test_the_database_refuses_inconsistent_rows() -> None:
    now = timezone.now()
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(
            severity="fatal", source="s", key="k", message="m", first_seen=now, last_seen=now
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(
            severity="info",
            source="s",
            key="k",
            message="m",
            first_seen=now,
            last_seen=now - timedelta(seconds=1),
        )


# -- the job queue ---------------------------------------------------------------------------


@pytest.fixture
def broker_url(settings: SettingsWrapper) -> Iterator[Callable[[str], None]]:
    """Point the Celery app at another broker for one test."""
    from config.celery import app

    original = app.conf.broker_url

    def use(url: str) -> None:
        settings.CELERY_BROKER_URL = url
        app.conf.broker_url = url

    yield use
    app.conf.broker_url = original


def test_a_broker_that_is_down_is_logged_and_the_raise_returns_at_once(
    broker_url: Callable[[str], None], django_capture_on_commit_callbacks: OnCommit
) -> None:
    broker_url("redis://127.0.0.1:1/0")  # nothing listens on port 1
    started = time.monotonic()
    with structlog.testing.capture_logs() as logs, django_capture_on_commit_callbacks(execute=True):
        alert = raise_kill_switch()
    elapsed = time.monotonic() - started

    assert Alert.objects.filter(pk=alert.pk).exists()
    # kombu's own retries would take about 6 s (Redis: ~19 s).
    assert elapsed < 3.0, f"alert_raise took {elapsed:.2f} s with the broker down"
    failures = [e for e in logs if e["event"] == "alert_enqueue_failed"]
    assert len(failures) == 1 and failures[0]["alert_id"] == alert.pk
    assert failures[0]["log_level"] == "error"


def test_any_enqueue_error_is_swallowed(
    monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: OnCommit
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("queue full")

    monkeypatch.setattr(tasks.deliver_alert, "apply_async", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        alert = raise_kill_switch()
    assert alert.pk is not None


def test_a_working_broker_receives_the_delivery_task(
    broker_url: Callable[[str], None],
    redis_url: str,
    django_capture_on_commit_callbacks: OnCommit,
) -> None:
    import json

    import redis

    broker_url(redis_url)
    with django_capture_on_commit_callbacks(execute=True):
        alert = raise_kill_switch()

    client = redis.Redis.from_url(redis_url)
    queued = [json.loads(m) for m in client.lrange("celery", 0, -1)]
    client.close()
    assert [m["headers"]["task"] for m in queued] == ["monitoring.deliver_alert"]
    assert queued[0]["headers"]["argsrepr"] == repr((alert.pk, "critical"))


# -- concurrency -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_raises_of_one_key_make_one_alert(on_postgres: bool, enqueued: Enqueued) -> None:
    if not on_postgres:
        pytest.skip("concurrency of row locks is a PostgreSQL matter")
    threads, errors = 12, []
    barrier = threading.Barrier(threads)

    def worker() -> None:
        try:
            barrier.wait(timeout=5)
            raise_kill_switch()
        except Exception as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=10)

    assert errors == []
    alert = Alert.objects.get()
    assert alert.count == threads
    assert enqueued == [(alert.pk, "critical")]


@pytest.mark.django_db(transaction=True)
def test_concurrent_escalations_notify_each_higher_severity_once(
    on_postgres: bool, enqueued: Enqueued
) -> None:
    if not on_postgres:
        pytest.skip("concurrency of row locks is a PostgreSQL matter")
    severities = ["info", "warning", "critical"] * 4
    barrier = threading.Barrier(len(severities))
    errors: list[Exception] = []

    def worker(severity: str) -> None:
        try:
            barrier.wait(timeout=5)
            raise_kill_switch(severity)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    pool = [threading.Thread(target=worker, args=(s,)) for s in severities]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=10)

    assert errors == []
    alert = Alert.objects.get()
    assert (alert.count, alert.severity) == (len(severities), "critical")
    notified = [severity for _, severity in enqueued]
    # Each notification is a strict escalation of the previous one; critical always comes last.
    ranks = [AlertSeverity(s).rank for s in notified]
    assert ranks == sorted(set(ranks)) and notified[-1] == "critical"

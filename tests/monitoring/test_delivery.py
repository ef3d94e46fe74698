"""alert_raise → monitoring.deliver_alert (eager) → every channel's stand-in: each channel is
delivered on its own, failures are recorded and retried, and the raise always returns."""

from __future__ import annotations

import time
from typing import Any

import pytest
from celery.exceptions import Retry
from pytest_django.fixtures import DjangoCaptureOnCommitCallbacks as OnCommit
from pytest_django.fixtures import Settings as SettingsWrapper

from monitoring import tasks
from monitoring.models import Alert, AlertDelivery, DeliveryStatus
from monitoring.services import alert_raise
from monitoring.tasks import DELIVERY_MAX_RETRIES, deliver_alert, retry_countdown
from tests.monitoring.conftest import EMAIL_TO, SMS_TO
from tests.support.slack_server import SlackServer
from tests.support.sms_server import SmsGatewayServer
from tests.support.smtp_server import SmtpServer

pytestmark = pytest.mark.django_db


def raise_and_deliver(on_commit: OnCommit, severity: str = "critical", **kwargs: Any) -> Alert:
    options = {"source": "risk.kill_switch", "message": "Kill switch activated", **kwargs}
    with on_commit(execute=True):
        alert = alert_raise(severity=severity, **options)
    return alert


def deliveries(alert: Alert) -> dict[str, AlertDelivery]:
    return {d.channel: d for d in AlertDelivery.objects.filter(alert=alert)}


def test_a_critical_alert_reaches_every_channel(
    channels: SettingsWrapper,
    slack_server: SlackServer,
    sms_server: SmsGatewayServer,
    smtp_server: SmtpServer,
    django_capture_on_commit_callbacks: OnCommit,
) -> None:
    alert = raise_and_deliver(django_capture_on_commit_callbacks)

    assert len(slack_server.received()) == 1
    assert [mail.rcpt_tos for mail in smtp_server.received()] == [tuple(EMAIL_TO)]
    assert [to for to, _ in sms_server.received()] == SMS_TO
    rows = deliveries(alert)
    assert set(rows) == {"slack", "email", "sms"}
    for row in rows.values():
        assert (row.status, row.attempts, row.severity, row.last_error) == (
            DeliveryStatus.SENT,
            1,
            "critical",
            "",
        )
        assert row.sent_at is not None
    assert rows["sms"].delivered_to == SMS_TO


def test_warning_and_info_stay_off_the_pager(
    channels: SettingsWrapper,
    slack_server: SlackServer,
    sms_server: SmsGatewayServer,
    smtp_server: SmtpServer,
    django_capture_on_commit_callbacks: OnCommit,
) -> None:
    warning = raise_and_deliver(django_capture_on_commit_callbacks, "warning", message="Stale data")
    info = raise_and_deliver(django_capture_on_commit_callbacks, "info", message="Backfill done")

    assert set(deliveries(warning)) == {"slack", "email"}
    assert set(deliveries(info)) == {"slack"}
    assert len(slack_server.received()) == 2
    assert len(smtp_server.received()) == 1
    assert sms_server.received() == [] and len(sms_server.requests) == 0


def test_a_grouped_repeat_sends_nothing_and_an_escalation_notifies_again(
    channels: SettingsWrapper,
    slack_server: SlackServer,
    sms_server: SmsGatewayServer,
    smtp_server: SmtpServer,
    django_capture_on_commit_callbacks: OnCommit,
) -> None:
    alert = raise_and_deliver(django_capture_on_commit_callbacks, "warning")
    raise_and_deliver(django_capture_on_commit_callbacks, "warning")
    assert (len(slack_server.received()), len(smtp_server.received())) == (1, 1)

    raise_and_deliver(django_capture_on_commit_callbacks, "critical")

    assert len(slack_server.received()) == 2
    assert slack_server.received()[1]["text"].startswith("[CRITICAL]")
    assert len(smtp_server.received()) == 2
    assert len(sms_server.received()) == 2
    rounds = sorted(
        AlertDelivery.objects.filter(alert=alert).values_list("severity", "channel", "status")
    )
    assert rounds == [
        ("critical", "email", "sent"),
        ("critical", "slack", "sent"),
        ("critical", "sms", "sent"),
        ("warning", "email", "sent"),
        ("warning", "slack", "sent"),
    ]


def test_slack_down_leaves_the_others_delivered_and_is_retried_until_given_up(
    channels: SettingsWrapper,
    slack_server: SlackServer,
    sms_server: SmsGatewayServer,
    smtp_server: SmtpServer,
    django_capture_on_commit_callbacks: OnCommit,
) -> None:
    slack_server.faults.add(500, times=None)
    started = time.monotonic()

    alert = raise_and_deliver(django_capture_on_commit_callbacks)

    # Eager retries ignore the countdown; honouring it would take 10 s or more.
    assert time.monotonic() - started < 5.0
    rows = deliveries(alert)
    assert rows["slack"].status == DeliveryStatus.FAILED
    assert rows["slack"].attempts == DELIVERY_MAX_RETRIES + 1
    assert rows["slack"].last_error == "Slack answered 500: internal_error"
    assert slack_server.requests.count(method="POST") == DELIVERY_MAX_RETRIES + 1
    # The channels that worked were sent once, not on every retry.
    assert (rows["email"].status, rows["email"].attempts) == (DeliveryStatus.SENT, 1)
    assert (rows["sms"].status, rows["sms"].attempts) == (DeliveryStatus.SENT, 1)
    assert len(smtp_server.received()) == 1 and len(sms_server.received()) == 2


def test_a_slack_hiccup_is_retried_without_resending_the_others(
    channels: SettingsWrapper,
    slack_server: SlackServer,
    sms_server: SmsGatewayServer,
    smtp_server: SmtpServer,
    django_capture_on_commit_callbacks: OnCommit,
) -> None:
    slack_server.faults.add(500, times=1)

    alert = raise_and_deliver(django_capture_on_commit_callbacks)

    rows = deliveries(alert)
    assert (rows["slack"].status, rows["slack"].attempts) == (DeliveryStatus.SENT, 2)
    assert rows["slack"].last_error == ""
    assert len(slack_server.received()) == 1
    assert len(smtp_server.received()) == 1 and len(sms_server.received()) == 2


def test_an_sms_timeout_is_retried_for_that_number_only(
    channels: SettingsWrapper,
    slack_server: SlackServer,
    sms_server: SmsGatewayServer,
    smtp_server: SmtpServer,
    django_capture_on_commit_callbacks: OnCommit,
) -> None:
    sms_server.faults.add(delay=1.0, times=1)  # first number: no answer within 0.3 s
    started = time.monotonic()

    alert = raise_and_deliver(django_capture_on_commit_callbacks)

    # Two attempts prove the 0.3 s timeout cut the 1 s answer off; the countdown is ignored.
    assert time.monotonic() - started < 5.0
    rows = deliveries(alert)
    assert (rows["sms"].status, rows["sms"].attempts) == (DeliveryStatus.SENT, 2)
    assert rows["sms"].delivered_to == [SMS_TO[1], SMS_TO[0]]
    assert sorted(to for to, _ in sms_server.received()) == sorted(SMS_TO)  # each once
    assert rows["slack"].attempts == rows["email"].attempts == 1


def test_smtp_down_is_recorded_and_the_others_delivered(
    channels: SettingsWrapper,
    slack_server: SlackServer,
    sms_server: SmsGatewayServer,
    smtp_server: SmtpServer,
    django_capture_on_commit_callbacks: OnCommit,
) -> None:
    smtp_server.stop()

    alert = raise_and_deliver(django_capture_on_commit_callbacks)

    rows = deliveries(alert)
    assert rows["email"].status == DeliveryStatus.FAILED
    assert rows["email"].attempts == DELIVERY_MAX_RETRIES + 1
    assert "ConnectionRefusedError" in rows["email"].last_error
    assert rows["slack"].status == rows["sms"].status == DeliveryStatus.SENT
    assert len(slack_server.received()) == 1 and len(sms_server.received()) == 2


def test_a_permanent_refusal_is_recorded_but_not_retried(
    channels: SettingsWrapper,
    sms_server: SmsGatewayServer,
    django_capture_on_commit_callbacks: OnCommit,
) -> None:
    channels.ALERT_SMS_TOKEN = "revoked"

    alert = raise_and_deliver(django_capture_on_commit_callbacks)

    sms = deliveries(alert)["sms"]
    assert (sms.status, sms.attempts) == (DeliveryStatus.FAILED, 1)
    assert sms.last_error.endswith("(not retried)") and "401" in sms.last_error
    assert sms_server.requests.count(status=401) == 2


def test_a_channel_that_crashes_does_not_stop_the_others(
    channels: SettingsWrapper,
    slack_server: SlackServer,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: OnCommit,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise KeyError("bug")

    monkeypatch.setattr("monitoring.notifiers.EmailNotifier.send", broken)

    alert = raise_and_deliver(django_capture_on_commit_callbacks, "warning")

    rows = deliveries(alert)
    assert rows["email"].status == DeliveryStatus.FAILED
    assert rows["email"].last_error == "KeyError: 'bug'"
    assert rows["slack"].status == DeliveryStatus.SENT
    assert len(slack_server.received()) == 1


def test_no_channel_configured_delivers_nothing(
    eager: SettingsWrapper, django_capture_on_commit_callbacks: OnCommit
) -> None:
    alert = raise_and_deliver(django_capture_on_commit_callbacks)
    assert Alert.objects.filter(pk=alert.pk).exists()
    assert not AlertDelivery.objects.exists()


def test_a_stale_round_stops_once_the_alert_was_escalated(
    channels: SettingsWrapper,
    slack_server: SlackServer,
    django_capture_on_commit_callbacks: OnCommit,
) -> None:
    alert = raise_and_deliver(django_capture_on_commit_callbacks, "critical")
    slack_server.requests.clear()

    deliver_alert.run(alert.pk, "info")  # a retry of an older round

    assert len(slack_server.requests) == 0
    assert not AlertDelivery.objects.filter(severity="info").exists()


def test_a_deleted_alert_is_skipped(channels: SettingsWrapper) -> None:
    deliver_alert.run(123456, "critical")
    assert not AlertDelivery.objects.exists()


# -- backoff -----------------------------------------------------------------------------------


def test_backoff_doubles_up_to_ten_minutes_and_honours_retry_after() -> None:
    assert [retry_countdown(n) for n in range(8)] == [10, 20, 40, 80, 160, 320, 600, 600]
    assert retry_countdown(0, retry_after=45.0) == 45.0
    assert retry_countdown(3, retry_after=5.0) == 80


def test_a_rate_limited_channel_is_retried_after_slacks_delay(
    channels: SettingsWrapper,
    slack_server: SlackServer,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: OnCommit,
) -> None:
    channels.CELERY_TASK_ALWAYS_EAGER = False  # run the task body here, see the retry it asks
    slack_server.faults.add(429, retry_after=120)
    asked: list[dict[str, Any]] = []

    def retry(**options: Any) -> Retry:
        asked.append(options)
        return Retry("retry", when=options.get("countdown"))

    monkeypatch.setattr(tasks.deliver_alert, "retry", retry)
    with django_capture_on_commit_callbacks(execute=False):
        alert = alert_raise(severity="info", source="s", message="m")

    with pytest.raises(Retry):
        deliver_alert.run(alert.pk, "info")

    assert asked == [{"countdown": 120.0}]
    slack = deliveries(alert)["slack"]
    assert (slack.status, slack.attempts) == (DeliveryStatus.FAILED, 1)
    assert slack.last_error == "Slack answered 429: rate_limited"


def test_a_failing_channel_backs_off_exponentially(
    channels: SettingsWrapper,
    slack_server: SlackServer,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: OnCommit,
) -> None:
    slack_server.faults.add(502, times=None)
    asked: list[dict[str, Any]] = []

    def retry(**options: Any) -> Retry:
        asked.append(options)
        return Retry("retry", when=options.get("countdown"))

    monkeypatch.setattr(tasks.deliver_alert, "retry", retry)
    with django_capture_on_commit_callbacks(execute=False):
        alert = alert_raise(severity="info", source="s", message="m")

    for retries in (0, 1, 2):
        with pytest.raises(Retry):
            deliver_alert.apply(args=(alert.pk, "info"), retries=retries)
    assert [a["countdown"] for a in asked] == [10.0, 20.0, 40.0]


def test_the_last_retry_gives_up_quietly(
    channels: SettingsWrapper,
    slack_server: SlackServer,
    django_capture_on_commit_callbacks: OnCommit,
) -> None:
    import structlog

    slack_server.faults.add(503, times=None)
    with django_capture_on_commit_callbacks(execute=False):
        alert = alert_raise(severity="info", source="s", message="m")

    with structlog.testing.capture_logs() as logs:
        result = deliver_alert.apply(args=(alert.pk, "info"), retries=DELIVERY_MAX_RETRIES)

    assert result.successful()
    [abandoned] = [e for e in logs if e["event"] == "alert_delivery_abandoned"]
    assert abandoned["channels"] == ["slack"] and abandoned["tries"] == DELIVERY_MAX_RETRIES + 1
    assert deliveries(alert)["slack"].status == DeliveryStatus.FAILED

"""Each notifier against its stand-in: Slack's webhook, the SMS gateway and a real SMTP server."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from monitoring.notifiers import (
    AlertMessage,
    EmailNotifier,
    SlackNotifier,
    SmsNotifier,
    notifiers_for,
)
from tests.monitoring.conftest import EMAIL_TO, SMS_TO
from tests.support.slack_server import SlackServer
from tests.support.sms_server import SmsGatewayServer
from tests.support.smtp_server import SmtpServer

MESSAGE = AlertMessage(
    alert_id=7,
    severity="critical",
    source="risk.kill_switch",
    message="Kill switch activated: total drawdown 10.4% > 10%",
    count=3,
    first_seen=datetime(2024, 3, 1, 14, 30, tzinfo=UTC),
    last_seen=datetime(2024, 3, 1, 14, 35, tzinfo=UTC),
    details={"scope": "system", "drawdown": "10.4%"},
)


# -- routing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        ("critical", ["slack", "email", "sms"]),
        ("warning", ["slack", "email"]),
        ("info", ["slack"]),
    ],
)
def test_each_severity_goes_to_its_channels(
    channels: SettingsWrapper, severity: str, expected: list[str]
) -> None:
    assert [n.channel for n in notifiers_for(severity)] == expected


def test_an_unconfigured_channel_is_skipped(channels: SettingsWrapper) -> None:
    channels.ALERT_SLACK_WEBHOOK_URL = ""
    channels.ALERT_SMS_TOKEN = ""  # a gateway without its token is not configured either
    assert [n.channel for n in notifiers_for("critical")] == ["email"]
    channels.ALERT_EMAIL_TO = []
    assert notifiers_for("critical") == []


# -- Slack -------------------------------------------------------------------------------------


def slack(server: SlackServer, url: str | None = None) -> SlackNotifier:
    return SlackNotifier(url or server.webhook_url, timeout=1.0)


def test_slack_posts_text_and_blocks_the_webhook_accepts(slack_server: SlackServer) -> None:
    result = slack(slack_server).send(MESSAGE)

    assert result.ok and result.delivered == ("webhook",)
    [payload] = slack_server.received()
    assert payload["text"] == (
        "[CRITICAL] risk.kill_switch: Kill switch activated: total drawdown 10.4% > 10% (x3)"
    )
    header, body, fields, context = payload["blocks"]
    assert header["type"] == "header" and header["text"]["text"].startswith("[CRITICAL]")
    assert body["text"]["text"] == MESSAGE.message
    assert [f["text"] for f in fields["fields"]] == [
        "*Severity*\nCRITICAL",
        "*Source*\nrisk.kill_switch",
        "*Count*\n3",
        "*Last seen*\n2024-03-01 14:35:00 UTC",
    ]
    assert context["elements"][0]["text"] == "scope: system\ndrawdown: 10.4%"
    request = slack_server.requests.last(method="POST")
    assert request.header("Content-Type") == "application/json"


def test_a_long_message_still_fits_slacks_block_limits(slack_server: SlackServer) -> None:
    long = AlertMessage(**{**MESSAGE.__dict__, "message": "x" * 5000})
    assert slack(slack_server).send(long).ok
    assert len(slack_server.received()) == 1


def test_slack_stand_in_refuses_what_slack_refuses(slack_server: SlackServer) -> None:
    post = httpx.post
    url = slack_server.webhook_url
    assert (post(url, json={}).status_code, post(url, json={}).text) == (400, "invalid_payload")
    assert post(url, content=b"not json").text == "invalid_payload"
    bad = {"text": "t", "blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}]}
    assert (post(url, json=bad).status_code, post(url, json=bad).text) == (400, "invalid_blocks")
    assert post(url, data={"payload": '{"text": "form"}'}).text == "ok"
    assert slack_server.received() == [{"text": "form"}]


def test_an_unknown_webhook_is_a_failure_not_worth_retrying(slack_server: SlackServer) -> None:
    result = slack(slack_server, slack_server.url + "/services/T0TEST/B0TEST/revoked").send(MESSAGE)
    assert not result.ok and not result.retryable
    assert result.error == "Slack answered 404: no_service"


def test_slack_rate_limit_is_retried_after_the_asked_delay(slack_server: SlackServer) -> None:
    slack_server.faults.add(429, retry_after=30)
    result = slack(slack_server).send(MESSAGE)
    assert result.retryable and result.retry_after == 30.0
    assert result.error == "Slack answered 429: rate_limited"
    assert slack(slack_server).send(MESSAGE).ok


def test_a_slack_server_error_is_retryable(slack_server: SlackServer) -> None:
    slack_server.faults.add(500)
    result = slack(slack_server).send(MESSAGE)
    assert result.retryable and "500" in result.error
    assert slack_server.received() == []


def test_an_unreachable_webhook_is_retryable() -> None:
    server = SlackServer().start()
    url = server.webhook_url
    server.stop()
    result = SlackNotifier(url, timeout=0.5).send(MESSAGE)
    assert result.retryable and "ConnectError" in result.error


def test_slack_already_delivered_is_not_sent_again(slack_server: SlackServer) -> None:
    assert slack(slack_server).send(MESSAGE, done={"webhook"}).ok
    assert len(slack_server.requests) == 0


# -- email -------------------------------------------------------------------------------------


def email(settings: SettingsWrapper, server: SmtpServer) -> EmailNotifier:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = server.host, server.port, 1
    return EmailNotifier(list(EMAIL_TO), from_email="alerts@quant.test")


def test_email_goes_over_smtp_to_every_recipient(
    settings: SettingsWrapper, smtp_server: SmtpServer
) -> None:
    result = email(settings, smtp_server).send(MESSAGE)

    assert result.ok and result.delivered == tuple(EMAIL_TO)
    [mail] = smtp_server.received()
    assert mail.mail_from == "alerts@quant.test"
    assert mail.rcpt_tos == tuple(EMAIL_TO)
    assert mail.message["Subject"] == (
        "[CRITICAL] risk.kill_switch: Kill switch activated: total drawdown 10.4% > 10% (x3)"
    )
    assert mail.message["To"] == ", ".join(EMAIL_TO)
    body = mail.message.get_content()
    assert body.startswith(MESSAGE.message)
    for line in ("Severity:   CRITICAL", "Count:      3", "Alert id:   7", "  drawdown: 10.4%"):
        assert line in body


def test_an_smtp_temporary_failure_is_retryable(
    settings: SettingsWrapper, smtp_server: SmtpServer
) -> None:
    smtp_server.fail_next("451 4.3.0 Mailbox busy, try later")
    result = email(settings, smtp_server).send(MESSAGE)
    assert result.retryable and "Mailbox busy" in result.error
    assert smtp_server.received() == []


def test_an_smtp_server_that_is_down_is_retryable(
    settings: SettingsWrapper, smtp_server: SmtpServer
) -> None:
    notifier = email(settings, smtp_server)
    smtp_server.stop()
    result = notifier.send(MESSAGE)
    assert result.retryable and "ConnectionRefusedError" in result.error


# -- SMS ---------------------------------------------------------------------------------------


def sms(server: SmsGatewayServer, token: str | None = None, timeout: float = 1.0) -> SmsNotifier:
    return SmsNotifier(server.gateway_url, token or server.token, list(SMS_TO), timeout=timeout)


def test_sms_sends_one_authorised_request_per_number(sms_server: SmsGatewayServer) -> None:
    result = sms(sms_server).send(MESSAGE)

    assert result.ok and result.delivered == tuple(SMS_TO)
    text = "[CRITICAL] risk.kill_switch: Kill switch activated: total drawdown 10.4% > 10% (x3)"
    assert sms_server.received() == [(number, text) for number in SMS_TO]
    for request in sms_server.requests.filter(method="POST"):
        assert request.header("Authorization") == "Bearer test-sms-token"
        assert set(request.json()) == {"to", "message"}


def test_a_long_sms_is_shortened_to_fit(sms_server: SmsGatewayServer) -> None:
    long = AlertMessage(**{**MESSAGE.__dict__, "message": "y" * 2000})
    assert sms(sms_server).send(long).ok
    texts = [text for _, text in sms_server.received()]
    assert all(len(t) == 320 and t.endswith("…") for t in texts)


def test_a_wrong_token_is_a_failure_not_worth_retrying(sms_server: SmsGatewayServer) -> None:
    result = sms(sms_server, token="stale").send(MESSAGE)
    assert not result.ok and not result.retryable
    assert result.error.count("gateway answered 401") == 2
    assert sms_server.received() == []


def test_a_failing_number_does_not_stop_the_others(sms_server: SmsGatewayServer) -> None:
    sms_server.faults.add(503, after=1)  # the second number's request fails
    result = sms(sms_server).send(MESSAGE)
    assert result.delivered == (SMS_TO[0],)
    assert result.retryable and f"{SMS_TO[1]}: gateway answered 503" in result.error

    retried = sms(sms_server).send(MESSAGE, done=set(result.delivered))
    assert retried.ok and retried.delivered == (SMS_TO[1],)
    assert [to for to, _ in sms_server.received()] == SMS_TO  # nobody texted twice


def test_a_gateway_timeout_is_retryable(sms_server: SmsGatewayServer) -> None:
    sms_server.faults.add(delay=1.0, times=1)
    result = sms(sms_server, timeout=0.2).send(MESSAGE)
    assert result.retryable and "ReadTimeout" in result.error
    assert result.delivered == (SMS_TO[1],)


def test_the_sms_stand_in_checks_numbers_and_text(sms_server: SmsGatewayServer) -> None:
    headers = {"Authorization": f"Bearer {sms_server.token}"}
    post = httpx.post
    url = sms_server.gateway_url
    assert post(url, json={"to": "555-1234", "message": "m"}, headers=headers).status_code == 400
    assert post(url, json={"to": "+15550000001", "message": ""}, headers=headers).status_code == 400
    assert post(url, json={"to": "+15550000001", "message": "m"}).status_code == 401
    ok = post(url, json={"to": "+15550000001", "message": "m"}, headers=headers)
    assert ok.status_code == 201 and ok.json()["status"] == "queued"

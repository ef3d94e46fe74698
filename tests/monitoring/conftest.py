"""Fixtures for alert tests: the Slack, SMS gateway and SMTP stand-ins, and settings that
route every alert channel to them with Celery running tasks in-process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.support.loopback import LoopbackServer
from tests.support.slack_server import SlackServer
from tests.support.sms_server import SmsGatewayServer
from tests.support.smtp_server import SmtpServer

SMS_TO = ["+15550000001", "+15550000002"]
EMAIL_TO = ["ops@example.com", "risk@example.com"]


def _serve(server: LoopbackServer) -> Iterator[Any]:
    with server:
        yield server
    if server.handler_errors:
        pytest.fail(f"{type(server).__name__} handler raised: {server.handler_errors!r}")


@pytest.fixture
def slack_server() -> Iterator[SlackServer]:
    yield from _serve(SlackServer())


@pytest.fixture
def sms_server() -> Iterator[SmsGatewayServer]:
    yield from _serve(SmsGatewayServer())


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def eager(settings: SettingsWrapper) -> SettingsWrapper:
    """Celery tasks run in-process, as soon as they are sent."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    return settings


@pytest.fixture
def channels(
    eager: SettingsWrapper,
    slack_server: SlackServer,
    sms_server: SmsGatewayServer,
    smtp_server: SmtpServer,
) -> SettingsWrapper:
    """Every channel configured against its stand-in (real SMTP, not the locmem backend)."""
    settings = eager
    settings.ALERT_SLACK_WEBHOOK_URL = slack_server.webhook_url
    settings.ALERT_SMS_GATEWAY_URL = sms_server.gateway_url
    settings.ALERT_SMS_TOKEN = sms_server.token
    settings.ALERT_SMS_TO = list(SMS_TO)
    settings.ALERT_EMAIL_TO = list(EMAIL_TO)
    settings.ALERT_HTTP_TIMEOUT_SECONDS = 0.3
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = smtp_server.host
    settings.EMAIL_PORT = smtp_server.port
    settings.EMAIL_TIMEOUT = 1.0
    settings.DEFAULT_FROM_EMAIL = "alerts@quant.test"
    return settings

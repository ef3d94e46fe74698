"""Alert channels: Slack incoming webhook, email (Django's mail backend), SMS over an HTTP gateway.

A notifier never raises: ``send`` returns a ``SendResult`` that says who was reached, what went
wrong and whether trying again can help (a timeout can, a revoked webhook cannot). Which
channels an alert goes to depends on its severity (``ROUTES``); a channel without settings is
skipped.
"""

from __future__ import annotations

import smtplib
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx
from django.conf import settings
from django.core.mail import EmailMessage

from monitoring.models import AlertChannel, AlertSeverity

ROUTES: dict[str, tuple[str, ...]] = {
    AlertSeverity.INFO: (AlertChannel.SLACK,),
    AlertSeverity.WARNING: (AlertChannel.SLACK, AlertChannel.EMAIL),
    AlertSeverity.CRITICAL: (AlertChannel.SLACK, AlertChannel.EMAIL, AlertChannel.SMS),
}
SMS_MAX_CHARS = 320
ERROR_MAX_CHARS = 500


@dataclass(frozen=True)
class AlertMessage:
    """What a notifier needs to know about an alert (no database access)."""

    alert_id: int
    severity: str
    source: str
    message: str
    count: int
    first_seen: datetime
    last_seen: datetime
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        repeats = f" (x{self.count})" if self.count > 1 else ""
        return f"[{self.severity.upper()}] {self.source}: {self.message}{repeats}"


@dataclass(frozen=True)
class SendResult:
    """Outcome of one attempt on one channel."""

    delivered: tuple[str, ...] = ()
    """Recipients reached by this attempt."""
    error: str = ""
    retryable: bool = True
    retry_after: float | None = None
    """Seconds the far side asked us to wait (Slack's Retry-After)."""

    @property
    def ok(self) -> bool:
        return not self.error


class Notifier(Protocol):
    channel: str

    def recipients(self) -> list[str]:
        """Every recipient of this channel; empty when the channel is not configured."""
        ...

    def send(self, message: AlertMessage, *, done: Collection[str] = ()) -> SendResult:
        """Send to every recipient not in ``done``."""
        ...


def _short(error: object) -> str:
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    return text[:ERROR_MAX_CHARS]


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(moment.tzinfo)).total_seconds())


class SlackNotifier:
    """Slack incoming webhook: POST JSON ``{"text", "blocks"}``, answered ``200 ok``.

    Slack's errors are plain-text bodies: 400 ``invalid_payload``, 403 ``action_prohibited``,
    404 ``no_service``, 410 ``channel_is_archived`` (a retry cannot fix those) and 429 with
    ``Retry-After``.
    """

    channel: str = AlertChannel.SLACK

    def __init__(self, webhook_url: str, *, timeout: float) -> None:
        self.webhook_url = webhook_url
        self.timeout = timeout

    def recipients(self) -> list[str]:
        return ["webhook"] if self.webhook_url else []

    def payload(self, message: AlertMessage) -> dict[str, Any]:
        fields = [
            f"*Severity*\n{message.severity.upper()}",
            f"*Source*\n{message.source}",
            f"*Count*\n{message.count}",
            f"*Last seen*\n{message.last_seen:%Y-%m-%d %H:%M:%S %Z}",
        ]
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": message.title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": message.message[:3000]}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        ]
        if message.details:
            lines = "\n".join(f"{k}: {v}" for k, v in message.details.items())
            blocks.append(
                {"type": "context", "elements": [{"type": "mrkdwn", "text": lines[:2000]}]}
            )
        return {"text": message.title, "blocks": blocks}

    def send(self, message: AlertMessage, *, done: Collection[str] = ()) -> SendResult:
        if "webhook" in done:
            return SendResult()
        try:
            response = httpx.post(
                self.webhook_url, json=self.payload(message), timeout=self.timeout
            )
        except httpx.HTTPError as error:
            return SendResult(error=_short(error))
        body = response.text.strip()
        if response.status_code == 200:
            return SendResult(delivered=("webhook",))
        problem = f"Slack answered {response.status_code}: {body[:200] or response.reason_phrase}"
        if response.status_code == 429:
            return SendResult(
                error=problem, retry_after=_retry_after(response.headers.get("Retry-After"))
            )
        return SendResult(error=problem, retryable=response.status_code >= 500)


class EmailNotifier:
    """One email to every ``ALERT_EMAIL_TO`` address through Django's mail backend (SMTP)."""

    channel: str = AlertChannel.EMAIL

    def __init__(self, to: list[str], *, from_email: str) -> None:
        self.to = to
        self.from_email = from_email

    def recipients(self) -> list[str]:
        return list(self.to)

    def render(self, message: AlertMessage) -> tuple[str, str]:
        lines = [
            message.message,
            "",
            f"Severity:   {message.severity.upper()}",
            f"Source:     {message.source}",
            f"Count:      {message.count}",
            f"First seen: {message.first_seen.isoformat()}",
            f"Last seen:  {message.last_seen.isoformat()}",
            f"Alert id:   {message.alert_id}",
        ]
        if message.details:
            lines += ["", "Details:", *(f"  {k}: {v}" for k, v in message.details.items())]
        return message.title[:200], "\n".join(lines) + "\n"

    def send(self, message: AlertMessage, *, done: Collection[str] = ()) -> SendResult:
        to = [address for address in self.to if address not in done]
        if not to:
            return SendResult()
        subject, body = self.render(message)
        try:
            EmailMessage(subject, body, self.from_email, to).send(fail_silently=False)
        except (smtplib.SMTPAuthenticationError, smtplib.SMTPRecipientsRefused) as error:
            return SendResult(error=_short(error), retryable=False)
        except Exception as error:  # connection refused, timeouts, 4xx/5xx replies
            return SendResult(error=_short(error))
        return SendResult(delivered=tuple(to))


class SmsNotifier:
    """HTTP SMS gateway: one ``POST {"to", "message"}`` per recipient with a bearer token."""

    channel: str = AlertChannel.SMS

    def __init__(self, gateway_url: str, token: str, to: list[str], *, timeout: float) -> None:
        self.gateway_url = gateway_url
        self.token = token
        self.to = to
        self.timeout = timeout

    def recipients(self) -> list[str]:
        return list(self.to) if self.gateway_url and self.token else []

    def text(self, message: AlertMessage) -> str:
        title = message.title
        return title if len(title) <= SMS_MAX_CHARS else title[: SMS_MAX_CHARS - 1] + "…"

    def send(self, message: AlertMessage, *, done: Collection[str] = ()) -> SendResult:
        delivered: list[str] = []
        errors: list[str] = []
        retryable = False
        headers = {"Authorization": f"Bearer {self.token}"}
        text = self.text(message)
        with httpx.Client(timeout=self.timeout, headers=headers) as client:
            for number in self.to:
                if number in done:
                    continue
                try:
                    response = client.post(self.gateway_url, json={"to": number, "message": text})
                except httpx.HTTPError as error:
                    errors.append(f"{number}: {_short(error)}")
                    retryable = True
                    continue
                if response.is_success:
                    delivered.append(number)
                    continue
                errors.append(
                    f"{number}: gateway answered {response.status_code} {response.text[:120]}"
                )
                retryable = (
                    retryable or response.status_code in (408, 429) or response.status_code >= 500
                )
        return SendResult(
            delivered=tuple(delivered),
            error="; ".join(errors)[:ERROR_MAX_CHARS],
            retryable=retryable,
        )


def configured_notifiers() -> dict[str, Notifier]:
    """Every channel built from the current settings (configured or not)."""
    timeout = settings.ALERT_HTTP_TIMEOUT_SECONDS
    return {
        AlertChannel.SLACK: SlackNotifier(settings.ALERT_SLACK_WEBHOOK_URL, timeout=timeout),
        AlertChannel.EMAIL: EmailNotifier(
            list(settings.ALERT_EMAIL_TO), from_email=settings.DEFAULT_FROM_EMAIL
        ),
        AlertChannel.SMS: SmsNotifier(
            settings.ALERT_SMS_GATEWAY_URL,
            settings.ALERT_SMS_TOKEN,
            list(settings.ALERT_SMS_TO),
            timeout=timeout,
        ),
    }


def notifiers_for(severity: str) -> list[Notifier]:
    """The configured channels an alert of ``severity`` goes to, in routing order."""
    available = configured_notifiers()
    return [available[c] for c in ROUTES[severity] if available[c].recipients()]

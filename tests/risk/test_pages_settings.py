"""The settings page: limits, pending limit changes and approvals (decided by admins),
notification channels."""

from __future__ import annotations

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from risk.services import admin_code_set, limit_change_request
from tests.support.dashboard import page, user_with_role

pytestmark = pytest.mark.django_db


def test_the_platform_limits_are_shown_with_their_meaning(viewer: Client) -> None:
    html = page(viewer, "/settings")
    assert 'data-limit="max_risk_per_trade_pct"' in html and "2.00%" in html
    assert "% of equity at risk" in html
    assert "admin code: <strong>not set</strong>" in html.replace(
        "Kill-switch admin code", "admin code"
    )
    admin_code_set(code="a-long-admin-code")
    assert "admin code: set" in page(viewer, "/settings", fragment="limits").replace(
        "Kill-switch admin code", "admin code"
    )


def test_a_pending_limit_change_can_be_decided_by_admins_only(
    admin: Client, viewer: Client
) -> None:
    change = limit_change_request(
        user=user_with_role("rick", "operator"),
        scope="platform",
        values={"max_risk_per_trade_pct": "1.5"},
        reason="tighter while the feed is flaky",
    )
    decide = f'data-decide="/v1/risk/limit-changes/{change.pk}/decide"'
    html = page(admin, "/settings", fragment="pending")
    assert decide in html and "tighter while the feed is flaky" in html and "1.5" in html
    assert "Approve" in html
    assert decide not in page(viewer, "/settings")
    assert "tighter while the feed is flaky" in page(viewer, "/settings")


def test_notification_channels_say_what_is_configured(
    viewer: Client, settings: SettingsWrapper
) -> None:
    settings.ALERT_EMAIL_TO = ["ops@example.com"]
    settings.ALERT_SLACK_WEBHOOK_URL = ""
    html = page(viewer, "/settings")
    email = html.split('data-channel="email"')[1].split("</tr>")[0]
    slack = html.split('data-channel="slack"')[1].split("</tr>")[0]
    assert "configured" in email and "op…@example.com" in email and "warning, critical" in email
    assert "not configured" in slack
    assert "ops@example.com" not in html  # recipients are masked

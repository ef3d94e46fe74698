"""Alert admin: list with filters, the Acknowledge action, deliveries shown read-only."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from monitoring.models import Alert, AlertDelivery, DeliveryStatus
from monitoring.services import alert_acknowledge, alert_raise

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/monitoring/alert/"


def make_alerts() -> tuple[Alert, Alert]:
    critical = alert_raise(severity="critical", source="risk.kill_switch", message="Kill switch on")
    alert_raise(severity="critical", source="risk.kill_switch", message="Kill switch on")
    warning = alert_raise(
        severity="warning", source="trading.reconciliation", message="AAPL qty differs"
    )
    return critical, warning


def test_the_list_shows_severity_source_count_and_last_seen(admin_client: Client) -> None:
    make_alerts()
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    page = response.content.decode()
    for text in ("Kill switch on", "AAPL qty differs", "risk.kill_switch", "Last seen", "Count"):
        assert text in page
    assert 'class="field-count">2<' in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("severity__exact=critical", {"Kill switch on"}),
        ("source__exact=trading.reconciliation", {"AAPL qty differs"}),
        ("acknowledged=yes", {"Kill switch on"}),
        ("acknowledged=no", {"AAPL qty differs"}),
    ],
)
def test_the_list_filters(
    admin_client: Client, admin_user: User, query: str, expected: set[str]
) -> None:
    critical, _ = make_alerts()
    alert_acknowledge(alert=critical, user=admin_user)
    response = admin_client.get(f"{CHANGELIST}?{query}")
    assert response.status_code == 200
    shown = {a.message for a in response.context["cl"].result_list}
    assert shown == expected


def test_the_acknowledge_action_acknowledges_as_the_operator(
    admin_client: Client, admin_user: User
) -> None:
    critical, warning = make_alerts()
    response = admin_client.post(
        CHANGELIST,
        {"action": "acknowledge", "_selected_action": [critical.pk, warning.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "2 alert(s) acknowledged." in response.content.decode()
    for alert in Alert.objects.all():
        assert alert.acknowledged_by == admin_user and alert.acknowledged_at is not None


def test_the_alert_page_shows_deliveries_read_only(admin_client: Client) -> None:
    critical, _ = make_alerts()
    AlertDelivery.objects.create(
        alert=critical,
        channel="slack",
        severity="critical",
        status=DeliveryStatus.FAILED,
        attempts=3,
        last_error="Slack answered 500: internal_error",
    )
    AlertDelivery.objects.create(
        alert=critical,
        channel="sms",
        severity="critical",
        status=DeliveryStatus.SENT,
        attempts=1,
        sent_at=timezone.now(),
    )
    response = admin_client.get(f"{CHANGELIST}{critical.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Slack answered 500: internal_error" in page
    assert 'name="deliveries-0-status"' not in page  # no editable delivery fields
    assert 'name="message"' not in page  # the alert itself is read-only
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403

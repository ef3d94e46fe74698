"""Admin: read-only limits with a request flow, approve/reject actions, kill-switch forms."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from quant.risk.limits import RiskLimits
from risk.models import (
    ChangeStatus,
    KillSwitchEvent,
    KillSwitchState,
    RiskLimitChange,
    RiskLimitSet,
)
from risk.selectors import limits_current
from risk.services import admin_code_set, limit_change_request

pytestmark = pytest.mark.django_db

CODE = "correct-horse-battery"
CHANGES = "/admin/risk/risklimitchange/"
SWITCHES = "/admin/risk/killswitchstate/"


@pytest.fixture(autouse=True)
def no_alert_delivery(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "monitoring.services._enqueue_delivery", lambda *a, **k: None, raising=False
    )


def global_state() -> KillSwitchState:
    return KillSwitchState.objects.get(scope="global")


def test_limits_are_shown_read_only_with_a_request_link(admin_client: Client) -> None:
    page = admin_client.get("/admin/risk/risklimitset/")
    assert page.status_code == 200
    assert b"Request a change" in page.content and b"scope=platform" in page.content
    row = RiskLimitSet.objects.get(is_active=True)
    assert admin_client.get(f"/admin/risk/risklimitset/{row.pk}/change/").status_code == 200
    edit = admin_client.post(f"/admin/risk/risklimitset/{row.pk}/change/", {"min_price": "1"})
    assert edit.status_code == 403
    assert admin_client.get("/admin/risk/risklimitset/add/").status_code == 403
    assert limits_current() == RiskLimits()


def test_a_change_is_requested_through_the_form_and_not_applied(admin_client: Client) -> None:
    form = admin_client.get(f"{CHANGES}add/?scope=platform")
    assert form.status_code == 200 and b"max_notional_per_trade" in form.content

    done = admin_client.post(
        f"{CHANGES}add/",
        {"scope": "platform", "max_notional_per_trade": "50000", "reason": "more room"},
        follow=True,
    )
    assert b"another user must approve it" in done.content
    change = RiskLimitChange.objects.get()
    assert change.status == ChangeStatus.PENDING and change.values == {
        "max_notional_per_trade": "50000"
    }
    assert limits_current() == RiskLimits()


def test_a_bad_request_shows_the_service_error(admin_client: Client) -> None:
    page = admin_client.post(
        f"{CHANGES}add/", {"scope": "platform", "max_risk_per_trade_pct": "150", "reason": "x"}
    )
    assert page.status_code == 200
    assert b"max_risk_per_trade_pct: must be a percentage" in page.content
    assert not RiskLimitChange.objects.exists()


def test_another_user_approves_from_the_list(admin_client: Client, alice: Any) -> None:
    change = limit_change_request(
        user=alice, scope="platform", values={"max_open_positions": 10}, reason="fewer"
    )
    page = admin_client.post(
        CHANGES, {"action": "approve", "_selected_action": [change.pk]}, follow=True
    )
    assert f"Change #{change.pk} approved and applied.".encode() in page.content
    assert limits_current().max_open_positions == 10


def test_the_requester_is_refused_in_the_admin(admin_client: Client) -> None:
    admin_client.post(
        f"{CHANGES}add/", {"scope": "platform", "max_open_positions": "10", "reason": "fewer"}
    )
    change = RiskLimitChange.objects.get()
    for action in ("approve", "reject"):
        page = admin_client.post(
            CHANGES, {"action": action, "_selected_action": [change.pk]}, follow=True
        )
        assert b"another user than the one who made it" in page.content
    change.refresh_from_db()
    assert change.status == ChangeStatus.PENDING
    assert limits_current() == RiskLimits()


def test_activate_from_the_add_form(
    admin_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    assert admin_client.get(f"{SWITCHES}add/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        page = admin_client.post(
            f"{SWITCHES}add/",
            {"strategy": "", "reason": "operator halt", "flatten": "on"},
            follow=True,
        )
    assert b"Kill switch (global) ACTIVATED." in page.content
    state = global_state()
    assert state.active and state.mode == "flatten" and state.activated_by is not None


def test_activate_and_deactivate_actions_use_an_intermediate_form(admin_client: Client) -> None:
    pk = global_state().pk
    step = admin_client.post(SWITCHES, {"action": "activate", "_selected_action": [pk]})
    assert step.status_code == 200 and b'name="reason"' in step.content
    assert not global_state().active

    admin_client.post(
        SWITCHES, {"action": "activate", "_selected_action": [pk], "apply": "1", "reason": "halt"}
    )
    assert global_state().active and global_state().reason == "halt"

    admin_code_set(code=CODE)
    step = admin_client.post(SWITCHES, {"action": "deactivate", "_selected_action": [pk]})
    assert b'type="password"' in step.content
    wrong = admin_client.post(
        SWITCHES,
        {"action": "deactivate", "_selected_action": [pk], "apply": "1", "admin_code": "nope-nope"},
        follow=True,
    )
    assert b"Wrong admin code" in wrong.content and global_state().active
    admin_client.post(
        SWITCHES,
        {"action": "deactivate", "_selected_action": [pk], "apply": "1", "admin_code": CODE},
    )
    assert not global_state().active
    actions = list(KillSwitchEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["activated", "deactivation_refused", "deactivated"]


def test_activation_without_a_reason_is_asked_again(admin_client: Client) -> None:
    pk = global_state().pk
    page = admin_client.post(
        SWITCHES, {"action": "activate", "_selected_action": [pk], "apply": "1"}
    )
    assert page.status_code == 200 and b"This field is required" in page.content
    assert not global_state().active


def test_events_are_read_only(admin_client: Client) -> None:
    assert admin_client.get("/admin/risk/killswitchevent/").status_code == 200
    assert admin_client.get("/admin/risk/killswitchevent/add/").status_code == 403


def test_a_staff_user_without_permissions_cannot_operate(
    client: Client, django_user_model: Any
) -> None:
    user = django_user_model.objects.create_user(
        username="viewer", password="pw-viewer-1", is_staff=True
    )
    client.force_login(user)
    assert client.get(f"{SWITCHES}add/").status_code == 403
    assert client.get(f"{CHANGES}add/").status_code == 403

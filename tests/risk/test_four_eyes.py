"""One four-eyes rule for every approval kind: the requester of a review, a promotion or a
risk-limit change cannot decide it, with one code and one message through the services, the
API and the admin; and one mode-transition table for the API and the admin."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from quant.errors import SelfApprovalError
from research.models import ApprovalRequest, Strategy
from risk import approvals
from risk.models import RiskLimitChange
from risk.services import limit_change_approve, limit_change_request
from tests.support.api import client_for, make_user
from tests.support.dashboard import signed_in
from tests.trading.operator_support import trading_strategy

pytestmark = pytest.mark.django_db

MESSAGE = "a request must be decided by another user than the one who made it"


@pytest.fixture
def ada() -> User:
    user = make_user("admin", "ada")
    user.is_staff = user.is_superuser = True
    user.save()
    return user


def test_the_services_refuse_a_self_decision_alike(ada: User) -> None:
    strategy = trading_strategy("four_eyes", "research")
    Strategy.objects.filter(pk=strategy.pk).update(reviewed_version=None)
    review = approvals.approval_request(strategy=strategy, kind="strategy_review", user=ada)
    change = limit_change_request(
        user=ada, scope="platform", values={"max_open_positions": 7}, reason="fewer"
    )

    with pytest.raises(SelfApprovalError) as on_review:
        approvals.approval_decide(approval=review, user=ada, approve=True)
    with pytest.raises(SelfApprovalError) as on_limits:
        limit_change_approve(change=change, user=ada)

    assert on_review.value.message == on_limits.value.message == MESSAGE
    assert on_review.value.code == on_limits.value.code == "self_approval"


def test_the_api_answers_403_self_approval_for_both_kinds(ada: User) -> None:
    strategy = trading_strategy("api_eyes", "paper")
    client = client_for(ada)
    moved = client.post(
        "/v1/controls/mode-transition",
        {"strategy_id": strategy.pk, "to_mode": "live", "reason": "ready"},
        content_type="application/json",
    )
    asked = client.post(
        "/v1/risk/limit-changes",
        {"scope": "platform", "values": {"max_open_positions": 9}, "reason": "fewer"},
        content_type="application/json",
    )
    approval_id = moved.json()["data"]["approval"]["id"]
    change_id = asked.json()["data"]["id"]

    answers = [
        client.post(url, {"approve": True}, content_type="application/json")
        for url in (
            f"/v1/controls/approvals/{approval_id}/decide",
            f"/v1/risk/limit-changes/{change_id}/decide",
        )
    ]

    for answer in answers:
        assert answer.status_code == 403
        assert answer.json()["error"]["code"] == "self_approval"
        assert answer.json()["error"]["message"] == MESSAGE


def test_the_admin_says_the_same_for_both_kinds(ada: User) -> None:
    strategy = trading_strategy("admin_eyes", "research")
    Strategy.objects.filter(pk=strategy.pk).update(reviewed_version=None)
    review = approvals.approval_request(strategy=strategy, kind="strategy_review", user=ada)
    change = limit_change_request(
        user=ada, scope="platform", values={"max_open_positions": 8}, reason="fewer"
    )
    client: Client = signed_in(ada)

    pages = [
        client.post(url, {"action": "approve", "_selected_action": [pk]}, follow=True)
        for url, pk in (
            ("/admin/quant/approvalrequest/", review.pk),
            ("/admin/risk/risklimitchange/", change.pk),
        )
    ]

    for page in pages:  # the admin capitalizes a message's first letter
        assert MESSAGE in page.content.decode().lower()
    assert ApprovalRequest.objects.get(pk=review.pk).status == "pending"
    assert RiskLimitChange.objects.get(pk=change.pk).status == "pending"


@pytest.mark.parametrize(
    ("mode", "to_mode", "status", "code"),
    [
        ("research", "live", 409, "gate_closed"),
        ("research", "research", 409, "conflict"),
        ("research", "paper", 422, "validation_error"),  # no succeeded backtest as evidence
        ("paper", "live", 202, None),
        ("live", "research", 200, None),
    ],
)
def test_mode_transitions_follow_one_table_in_the_api_and_the_admin(
    ada: User, mode: str, to_mode: str, status: int, code: str | None
) -> None:
    strategy = trading_strategy("moving", mode)
    answer = client_for(ada).post(
        "/v1/controls/mode-transition",
        {"strategy_id": strategy.pk, "to_mode": to_mode, "reason": "test"},
        content_type="application/json",
    )
    assert answer.status_code == status, answer.json()
    if code is not None:
        assert answer.json()["error"]["code"] == code
    if mode == "research" and to_mode == "live":
        admin = signed_in(ada).post(
            "/admin/quant/strategy/",
            {"action": "request_live", "_selected_action": [strategy.pk]},
            follow=True,
        )
        assert answer.json()["error"]["message"] in admin.content.decode()

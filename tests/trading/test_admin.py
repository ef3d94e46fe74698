"""Operator admin: read-only order-path tables, and actions that call the services (cancel,
flatten, reconcile; approval requests, decisions and demotions) and report each result."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from backtests.models import BacktestRun, RunStatus
from research.models import (
    ApprovalKind,
    ApprovalRequest,
    ApprovalStatus,
    ModeChange,
    Strategy,
    StrategyMode,
)
from tests.trading.operator_support import InstantBroker, daily_prices, trading_strategy
from trading.brokers import broker_override
from trading.models import Order, OrderSource, Position, ReconciliationRun, SafeMode
from trading.services.reconcile import forget_process_reconciliation
from trading.services.submit import order_submit

pytestmark = pytest.mark.django_db

ORDERS = "/admin/trading/order/"
POSITIONS = "/admin/trading/position/"
RUNS = "/admin/trading/reconciliationrun/"
STRATEGIES = "/admin/quant/strategy/"
APPROVALS = "/admin/quant/approvalrequest/"


@pytest.fixture
def paper_broker() -> Iterator[InstantBroker]:
    broker = InstantBroker()
    broker_override("paper", broker)
    forget_process_reconciliation()
    yield broker
    broker_override("paper", None)
    forget_process_reconciliation()


@pytest.fixture
def paper(db: None) -> Strategy:
    daily_prices("SPY", "100")
    return trading_strategy("ops_sma", StrategyMode.PAPER)


@pytest.fixture
def other_admin(db: None) -> Client:
    """A second superuser: approvals need a decider other than the requester."""
    user = User.objects.create_superuser("bob", "bob@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def buy(strategy: Strategy, broker: InstantBroker, qty: str = "10", **extra: object) -> Order:
    return order_submit(
        strategy=strategy,
        mode="paper",
        broker=broker,
        symbol="SPY",
        side="buy",
        quantity=Decimal(qty),
        **extra,  # type: ignore[arg-type]
    )


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def act(client: Client, url: str, action: str, pks: list[int], **data: object) -> Any:
    """POST an admin action on the selected rows (and follow the redirect back)."""
    return client.post(
        url, {"action": action, "_selected_action": [str(pk) for pk in pks], **data}, follow=True
    )


# --- read-only tables -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        "order",
        "position",
        "fill",
        "accountsnapshot",
        "reconciliationrun",
        "safemode",
        "strategyruntime",
    ],
)
def test_order_path_tables_can_be_read_but_not_added_changed_or_deleted(
    admin_client: Client, paper: Strategy, paper_broker: InstantBroker, model: str
) -> None:
    buy(paper, paper_broker)
    listing = admin_client.get(f"/admin/trading/{model}/")

    assert listing.status_code == 200
    assert admin_client.get(f"/admin/trading/{model}/add/").status_code == 403
    assert b"delete_selected" not in listing.content


def test_an_order_page_shows_its_events_and_fills_read_only(
    admin_client: Client, paper: Strategy, paper_broker: InstantBroker
) -> None:
    order = buy(paper, paper_broker)

    page = admin_client.get(f"{ORDERS}{order.pk}/change/")
    listing = admin_client.get(ORDERS, {"q": order.client_order_id})

    assert page.status_code == 200
    content = page.content.decode()
    assert "submit_started" in content and "pending -fill-&gt; filled" in content
    assert 'name="fills-TOTAL_FORMS" value="1"' in content
    assert order.fills.get().broker_fill_id in content
    assert 'name="_save"' not in content  # nothing to save: orders change through services
    assert order.client_order_id in listing.content.decode()
    assert admin_client.post(f"{ORDERS}{order.pk}/delete/").status_code == 403


def test_cancel_order_cancels_open_orders_and_reports_each(
    admin_client: Client, paper: Strategy, paper_broker: InstantBroker
) -> None:
    resting = buy(paper, paper_broker, "5", order_type="limit", limit_price=Decimal("99"))
    filled = buy(paper, paper_broker, "1")
    assert resting.status == "submitted" and filled.status == "filled"

    response = act(admin_client, ORDERS, "cancel_orders", [resting.pk, filled.pk])

    resting.refresh_from_db()
    assert resting.status == "cancelled"
    assert paper_broker.cancelled == [resting.client_order_id]
    assert resting.events.filter(event="cancel_requested", details__reason="cancelled by admin")
    shown = messages_of(response)
    assert f"{resting.client_order_id} cancelled, filled 0 of 5" in shown
    assert f"{filled.client_order_id} is already filled: nothing to cancel" in shown


def test_cancel_order_shows_a_broker_failure(
    admin_client: Client, paper: Strategy, paper_broker: InstantBroker
) -> None:
    resting = buy(paper, paper_broker, "5", order_type="limit", limit_price=Decimal("99"))
    paper_broker.down = True

    response = act(admin_client, ORDERS, "cancel_orders", [resting.pk])

    assert messages_of(response) == [f"{resting.client_order_id}: connection refused"]
    resting.refresh_from_db()
    assert resting.status == "submitted" and resting.cancel_requested_at is not None


# --- flatten ----------------------------------------------------------------------------------


def test_flatten_asks_for_confirmation_then_closes_the_position(
    admin_client: Client, paper: Strategy, paper_broker: InstantBroker
) -> None:
    buy(paper, paper_broker, "10")
    position = Position.objects.get()

    confirm = act(admin_client, POSITIONS, "flatten_positions", [position.pk])

    assert confirm.status_code == 200
    assert b"Flatten positions" in confirm.content and b"ops_sma paper SPY: 10" in confirm.content
    assert Order.objects.count() == 1  # nothing sent yet

    done = act(
        admin_client, POSITIONS, "flatten_positions", [position.pk], apply="1", reason="risk off"
    )

    position.refresh_from_db()
    assert position.quantity == 0
    order = Order.objects.get(side="sell")
    assert order.source == OrderSource.OPERATOR and order.quantity == Decimal("10")
    assert order.reason == "flattened by admin: risk off"
    assert messages_of(done) == [
        f"ops_sma paper SPY: {order.client_order_id} filled, filled 10 of 10 @ 100"
    ]


def test_flatten_reports_a_rejection_and_a_flat_position(
    admin_client: Client, paper: Strategy, paper_broker: InstantBroker
) -> None:
    buy(paper, paper_broker, "10")
    held = Position.objects.get()
    flat = Position.objects.create(strategy=paper, mode="paper", symbol="QQQ")
    paper_broker.refuse.add("SPY")

    done = act(
        admin_client, POSITIONS, "flatten_positions", [held.pk, flat.pk], apply="1", reason="x"
    )

    order = Order.objects.get(side="sell")
    assert order.status == "rejected"
    shown = messages_of(done)
    assert (
        f"ops_sma paper SPY: {order.client_order_id} rejected: "
        "Broker rejected: asset SPY is not tradable" in shown
    )
    assert "ops_sma paper QQQ: already flat" in shown
    held.refresh_from_db()
    assert held.quantity == Decimal("10")


def test_flatten_without_a_reason_shows_the_form_again(
    admin_client: Client, paper: Strategy, paper_broker: InstantBroker
) -> None:
    buy(paper, paper_broker, "10")
    position = Position.objects.get()

    again = act(admin_client, POSITIONS, "flatten_positions", [position.pk], apply="1", reason="")

    assert again.status_code == 200 and b"This field is required" in again.content
    assert Order.objects.count() == 1


# --- reconcile now ----------------------------------------------------------------------------


def test_reconcile_now_works_without_any_run_yet(
    admin_client: Client, paper: Strategy, paper_broker: InstantBroker
) -> None:
    form = admin_client.post(RUNS, {"action": "reconcile_now"})
    assert form.status_code == 200 and b'name="modes"' in form.content

    done = admin_client.post(
        RUNS, {"action": "reconcile_now", "apply": "1", "modes": ["paper"]}, follow=True
    )

    assert messages_of(done) == ["paper: matched the broker"]
    assert ReconciliationRun.objects.get().matched


def test_reconcile_now_reports_a_mismatch_and_a_broker_error(
    admin_client: Client, paper: Strategy, paper_broker: InstantBroker
) -> None:
    paper_broker.extra_positions = {"QQQ": Decimal("3")}
    first = admin_client.post(
        RUNS, {"action": "reconcile_now", "apply": "1", "modes": ["paper"]}, follow=True
    )
    run = ReconciliationRun.objects.get()
    assert messages_of(first) == [f"paper: 1 discrepancies, safe mode is on (see run {run.pk})"]
    assert SafeMode.objects.get(mode="paper").active

    paper_broker.down = True
    again = act(admin_client, RUNS, "reconcile_now", [run.pk], apply="1", modes=["paper"])

    assert messages_of(again) == ["paper: RetryableBrokerError: connection refused"]


def test_reconcile_now_needs_the_change_permission(
    client: Client, paper_broker: InstantBroker
) -> None:
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_reconciliationrun"))
    client.force_login(viewer)

    response = client.post(RUNS, {"action": "reconcile_now", "apply": "1", "modes": ["paper"]})

    assert response.status_code == 403
    assert not ReconciliationRun.objects.exists()


# --- approvals --------------------------------------------------------------------------------


def test_a_review_is_requested_by_one_user_and_approved_by_another(
    admin_client: Client, other_admin: Client
) -> None:
    strategy = trading_strategy("fresh", StrategyMode.RESEARCH)
    Strategy.objects.filter(pk=strategy.pk).update(reviewed_version=None, reviewed_at=None)

    requested = act(admin_client, STRATEGIES, "request_review", [strategy.pk])
    approval = ApprovalRequest.objects.get(kind=ApprovalKind.STRATEGY_REVIEW, status="pending")
    assert messages_of(requested) == [
        f"Strategy review (before backtests) of fresh requested (request {approval.pk}): "
        "another user approves or rejects it under Approval requests"
    ]

    own = act(admin_client, APPROVALS, "approve", [approval.pk])
    assert messages_of(own) == [
        f"{approval}: a request must be decided by another user than the one who made it"
    ]

    decided = act(other_admin, APPROVALS, "approve", [approval.pk])

    assert messages_of(decided) == [
        "Strategy review (before backtests) for fresh: approved (research mode)"
    ]
    strategy.refresh_from_db()
    assert strategy.is_reviewed and strategy.reviewed_at is not None
    listing = admin_client.get(STRATEGIES)
    assert b"column-reviewed_version" in listing.content


def test_promotion_to_paper_takes_backtest_ids_and_can_be_rejected(
    admin_client: Client, other_admin: Client
) -> None:
    strategy = trading_strategy("promo", StrategyMode.RESEARCH)
    assert strategy.current_version is not None
    run = BacktestRun.objects.create(
        strategy=strategy,
        strategy_version=strategy.current_version,
        status=RunStatus.SUCCEEDED,
        strategy_config={},
        backtest_config={},
        symbols=["SPY"],
        timeframe="1Day",
        metrics={"sharpe_ratio": 1.4, "total_trades": 12},
        finished_at=datetime(2024, 1, 5, tzinfo=UTC),
    )

    form = act(admin_client, STRATEGIES, "request_paper", [strategy.pk])
    assert form.status_code == 200 and b"backtest_run_ids" in form.content
    bad = act(
        admin_client, STRATEGIES, "request_paper", [strategy.pk], apply="1", backtest_run_ids="x"
    )
    assert b"not run ids: x" in bad.content
    unknown = act(
        admin_client, STRATEGIES, "request_paper", [strategy.pk], apply="1", backtest_run_ids="999"
    )
    assert messages_of(unknown) == [
        "promo: backtest_run_ids: [999] are not succeeded runs of promo"
    ]

    act(
        admin_client,
        STRATEGIES,
        "request_paper",
        [strategy.pk],
        apply="1",
        backtest_run_ids=f"{run.pk}",
        note="looks good",
    )
    approval = ApprovalRequest.objects.get(kind=ApprovalKind.PROMOTE_PAPER)
    assert approval.evidence["backtest_runs"][0]["run_id"] == run.pk
    page = admin_client.get(f"{APPROVALS}{approval.pk}/change/")
    assert b"&quot;sharpe_ratio&quot;: 1.4" in page.content  # pretty-printed evidence

    rejected = act(other_admin, APPROVALS, "reject", [approval.pk])

    assert messages_of(rejected) == ["Backtest → paper trading for promo: rejected (research mode)"]
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.REJECTED
    strategy.refresh_from_db()
    assert strategy.mode == StrategyMode.RESEARCH


def test_promotion_to_live_is_applied_when_approved(
    admin_client: Client, other_admin: Client, paper: Strategy
) -> None:
    act(admin_client, STRATEGIES, "request_live", [paper.pk])
    approval = ApprovalRequest.objects.get(kind=ApprovalKind.PROMOTE_LIVE)

    decided = act(other_admin, APPROVALS, "approve", [approval.pk])

    assert messages_of(decided) == ["Paper → live trading for ops_sma: approved (live mode)"]
    change = ModeChange.objects.get()
    assert (change.from_mode, change.to_mode, change.approval_id) == ("paper", "live", approval.pk)
    assert admin_client.get("/admin/quant/modechange/").status_code == 200
    assert admin_client.get("/admin/quant/modechange/add/").status_code == 403


def test_promotion_to_live_is_refused_for_a_research_strategy(admin_client: Client) -> None:
    strategy = trading_strategy("early", StrategyMode.RESEARCH)

    response = act(admin_client, STRATEGIES, "request_live", [strategy.pk])

    assert messages_of(response) == ["early: research → live skips a gate: promote to paper first"]
    assert not ApprovalRequest.objects.filter(kind=ApprovalKind.PROMOTE_LIVE).exists()


def test_demote_asks_for_mode_and_reason_then_applies_at_once(
    admin_client: Client, paper: Strategy
) -> None:
    form = act(admin_client, STRATEGIES, "demote", [paper.pk])
    assert form.status_code == 200 and b'name="to_mode"' in form.content
    missing = act(admin_client, STRATEGIES, "demote", [paper.pk], apply="1", to_mode="research")
    assert b"This field is required" in missing.content

    done = act(
        admin_client,
        STRATEGIES,
        "demote",
        [paper.pk],
        apply="1",
        to_mode="research",
        reason="drawdown",
    )

    assert messages_of(done) == ["ops_sma demoted: paper → research"]
    change = ModeChange.objects.get()
    assert change.changed_by is not None
    assert (change.to_mode, change.reason, change.changed_by.username) == (
        "research",
        "drawdown",
        "admin",
    )
    same = act(
        admin_client, STRATEGIES, "demote", [paper.pk], apply="1", to_mode="paper", reason="x"
    )
    assert messages_of(same) == [
        "ops_sma: research → paper is a promotion: request an approval instead"
    ]

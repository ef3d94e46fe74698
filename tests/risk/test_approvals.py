"""Human-in-the-loop gates: review before backtests, backtest → paper, paper → live.

Each promotion is a request with evidence that a different user decides; approving applies
it and records a ``ModeChange``. Demotions need no approval.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from backtests.models import BacktestRun, RunStatus
from backtests.services import backtest_run_create
from quant.backtest import BacktestConfig
from quant.errors import ConflictError, SelfApprovalError, ValidationError
from quant.strategies.config import config_validate
from research.models import (
    ApprovalKind,
    ApprovalRequest,
    ModeChange,
    Strategy,
    StrategyMode,
    StrategyVersion,
)
from research.services import strategy_version_ensure
from risk import approvals

pytestmark = pytest.mark.django_db


@pytest.fixture
def strategy() -> Strategy:
    config = config_validate(
        {
            "name": "gate_sma",
            "class": "sma_crossover",
            "symbols": ["SPY"],
            "params": {"fast": 3, "slow": 8},
        }
    )
    return strategy_version_ensure(config=config, source="file")[0].strategy


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", is_staff=True)


@pytest.fixture
def bob() -> User:
    return User.objects.create_user("bob", is_staff=True)


def current(strategy: Strategy) -> StrategyVersion:
    assert strategy.current_version is not None
    return strategy.current_version


def succeeded_run(strategy: Strategy) -> BacktestRun:
    return BacktestRun.objects.create(
        strategy=strategy,
        strategy_version=current(strategy),
        status=RunStatus.SUCCEEDED,
        strategy_config={},
        backtest_config={},
        timeframe="1Day",
        metrics={
            "total_return": 0.12,
            "sharpe_ratio": 1.1,
            "max_drawdown": -0.08,
            "total_trades": 9,
        },
        finished_at=timezone.now(),
    )


def review(strategy: Strategy, requester: User, decider: User) -> None:
    request = approvals.approval_request(
        strategy=strategy, kind=ApprovalKind.STRATEGY_REVIEW, user=requester
    )
    approvals.approval_decide(approval=request, user=decider, approve=True)
    strategy.refresh_from_db()


def test_a_strategy_nobody_reviewed_cannot_be_backtested(strategy: Strategy) -> None:
    with pytest.raises(ConflictError, match="has not been reviewed"):
        backtest_run_create(strategy_version=current(strategy), config=BacktestConfig())


def test_the_requester_cannot_approve_their_own_request(
    strategy: Strategy, alice: User, bob: User
) -> None:
    request = approvals.approval_request(strategy=strategy, kind="strategy_review", user=alice)

    with pytest.raises(SelfApprovalError, match="another user than the one who made it"):
        approvals.approval_decide(approval=request, user=alice, approve=True)
    approvals.approval_decide(approval=request, user=bob, approve=True)

    strategy.refresh_from_db()
    request.refresh_from_db()
    assert strategy.is_reviewed and strategy.reviewed_version == strategy.current_version
    assert request.status == "approved" and request.decided_by == bob
    assert backtest_run_create(strategy_version=current(strategy), config=BacktestConfig())


def test_the_database_refuses_a_self_approved_request(strategy: Strategy, alice: User) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        ApprovalRequest.objects.create(
            kind="strategy_review",
            strategy=strategy,
            status="approved",
            requested_by=alice,
            decided_by=alice,
            requested_at=timezone.now(),
        )


def test_a_rejected_review_changes_nothing(strategy: Strategy, alice: User, bob: User) -> None:
    request = approvals.approval_request(strategy=strategy, kind="strategy_review", user=alice)
    approvals.approval_decide(approval=request, user=bob, approve=False, note="needs a stop")

    strategy.refresh_from_db()
    assert not strategy.is_reviewed and strategy.reviewed_at is None
    with pytest.raises(ConflictError, match="already rejected"):
        approvals.approval_decide(approval=request, user=bob, approve=True)


def test_one_pending_request_per_gate(strategy: Strategy, alice: User) -> None:
    approvals.approval_request(strategy=strategy, kind="strategy_review", user=alice)
    with pytest.raises(ConflictError, match="already pending"):
        approvals.approval_request(strategy=strategy, kind="strategy_review", user=alice)


def test_promotion_to_paper_needs_a_review_and_a_succeeded_backtest(
    strategy: Strategy, alice: User, bob: User
) -> None:
    with pytest.raises(ConflictError, match="review first"):
        approvals.approval_request(strategy=strategy, kind="promote_paper", user=alice)
    review(strategy, alice, bob)
    with pytest.raises(ValidationError, match="succeeded backtest"):
        approvals.approval_request(strategy=strategy, kind="promote_paper", user=alice)
    run = succeeded_run(strategy)

    request = approvals.approval_request(strategy=strategy, kind="promote_paper", user=alice)
    approvals.approval_decide(approval=request, user=bob, approve=True)

    strategy.refresh_from_db()
    assert strategy.mode == StrategyMode.PAPER
    assert request.evidence["backtest_runs"][0]["run_id"] == run.pk
    assert request.evidence["backtest_runs"][0]["metrics"]["sharpe_ratio"] == 1.1
    change = ModeChange.objects.get(strategy=strategy)
    assert (change.from_mode, change.to_mode, change.approval_id) == (
        "research",
        "paper",
        request.pk,
    )


def test_named_backtest_runs_must_be_succeeded_runs_of_the_strategy(
    strategy: Strategy, alice: User, bob: User
) -> None:
    review(strategy, alice, bob)
    with pytest.raises(ValidationError, match=r"\[999\] are not succeeded runs"):
        approvals.approval_request(
            strategy=strategy, kind="promote_paper", user=alice, backtest_run_ids=[999]
        )


def test_promotion_to_live_carries_the_paper_results(
    strategy: Strategy, alice: User, bob: User
) -> None:
    review(strategy, alice, bob)
    succeeded_run(strategy)
    approvals.approval_decide(
        approval=approvals.approval_request(strategy=strategy, kind="promote_paper", user=alice),
        user=bob,
        approve=True,
    )
    with pytest.raises(ConflictError, match="needs it in research mode"):
        approvals.approval_request(strategy=strategy, kind="promote_paper", user=alice)

    request = approvals.approval_request(strategy=strategy, kind="promote_live", user=bob)
    approvals.approval_decide(approval=request, user=alice, approve=True)

    strategy.refresh_from_db()
    assert strategy.mode == StrategyMode.LIVE
    assert set(request.evidence["paper"]) == {
        "paper_since",
        "fills",
        "realized_pnl",
        "open_positions",
    }
    assert request.evidence["paper"]["paper_since"] is not None


def test_demotion_needs_a_reason_but_no_approval(strategy: Strategy, alice: User) -> None:
    Strategy.objects.filter(pk=strategy.pk).update(mode="live")
    strategy.refresh_from_db()
    with pytest.raises(ValidationError, match="reason"):
        approvals.strategy_demote(strategy=strategy, to_mode="paper", user=alice, reason=" ")

    approvals.strategy_demote(strategy=strategy, to_mode="research", user=alice, reason="drawdown")

    strategy.refresh_from_db()
    assert strategy.mode == "research"
    assert ModeChange.objects.get(strategy=strategy).approval is None


def test_a_promotion_cannot_be_a_demotion(strategy: Strategy, alice: User) -> None:
    with pytest.raises(ConflictError, match="is a promotion"):
        approvals.strategy_demote(strategy=strategy, to_mode="live", user=alice, reason="yolo")

"""Risk limits in the database: two-person changes, validation, history, effective limits."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, transaction

from quant.errors import (
    ConflictError,
    PermissionDeniedError,
    SelfApprovalError,
    ValidationError,
)
from quant.risk.limits import RiskLimits, StrategyLimits
from research.models import Strategy
from research.services import strategy_version_ensure
from risk.models import ChangeStatus, RiskLimitChange, RiskLimitSet, StrategyRiskLimit
from risk.selectors import (
    limit_changes_pending,
    limits_current,
    limits_effective_for,
    strategy_limits_for,
)
from risk.services import limit_change_approve, limit_change_reject, limit_change_request
from tests.backtests.conftest import sma_config
from tests.risk.conftest import make_strategy

pytestmark = pytest.mark.django_db

D = Decimal


def request_platform(user: Any, **values: Any) -> RiskLimitChange:
    return limit_change_request(
        user=user,
        scope="platform",
        values=values or {"max_notional_per_trade": "50000"},
        reason="scale up",
    )


def test_the_spec_limits_are_active_after_migrating() -> None:
    assert RiskLimitSet.objects.filter(is_active=True).count() == 1
    assert limits_current() == RiskLimits()


def test_a_strategy_without_stored_limits_gets_the_defaults(strategy: Strategy) -> None:
    assert strategy_limits_for(strategy=strategy) == StrategyLimits()


def test_a_change_takes_effect_only_after_another_user_approves_it(alice: Any, bob: Any) -> None:
    change = request_platform(alice)
    assert change.status == ChangeStatus.PENDING
    assert change.values == {"max_notional_per_trade": "50000"}
    assert change.previous_values == {"max_notional_per_trade": "25000"}
    assert limits_current().max_notional_per_trade == D(25000)
    assert list(limit_changes_pending()) == [change]

    approved = limit_change_approve(change=change, user=bob, note="ok")

    assert (approved.status, approved.decided_by, approved.decision_note) == ("approved", bob, "ok")
    assert approved.decided_at is not None
    assert limits_current() == RiskLimits(max_notional_per_trade=D(50000))
    old, new = RiskLimitSet.objects.order_by("id")
    assert not old.is_active and old.max_notional_per_trade == D(25000)  # history kept
    assert new.is_active and new.change == approved


def test_the_requester_can_neither_approve_nor_reject(alice: Any) -> None:
    change = request_platform(alice)
    with pytest.raises(SelfApprovalError, match="another user than the one who made it"):
        limit_change_approve(change=change, user=alice)
    with pytest.raises(PermissionDeniedError):
        limit_change_reject(change=change, user=alice)
    change.refresh_from_db()
    assert change.status == ChangeStatus.PENDING
    assert limits_current() == RiskLimits()


def test_the_database_refuses_a_self_decided_change(alice: Any) -> None:
    change = request_platform(alice)
    with pytest.raises(IntegrityError), transaction.atomic():
        RiskLimitChange.objects.filter(pk=change.pk).update(
            status=ChangeStatus.APPROVED, decided_by=alice, decided_at=change.requested_at
        )


def test_an_anonymous_user_cannot_request_or_decide(alice: Any) -> None:
    with pytest.raises(ValidationError, match="signed-in user"):
        request_platform(None)
    with pytest.raises(ValidationError, match="signed-in user"):
        limit_change_approve(change=request_platform(alice), user=None)


def test_a_decided_change_cannot_be_decided_again(alice: Any, bob: Any) -> None:
    change = request_platform(alice)
    limit_change_reject(change=change, user=bob, note="too much")
    with pytest.raises(ConflictError, match="is rejected, not pending"):
        limit_change_approve(change=change, user=bob)
    assert limits_current() == RiskLimits()


def test_a_new_request_supersedes_the_pending_one(alice: Any, bob: Any) -> None:
    first = request_platform(alice)
    second = request_platform(bob, max_open_positions=10)
    first.refresh_from_db()
    assert first.status == ChangeStatus.SUPERSEDED and first.decided_at is not None
    with pytest.raises(ConflictError, match="superseded"):
        limit_change_approve(change=first, user=bob)
    limit_change_approve(change=second, user=alice)
    assert limits_current() == RiskLimits(max_open_positions=10)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"max_risk": 1},
            "unknown platform limit 'max_risk' \\(did you mean 'max_risk_per_trade_pct'\\?\\)",
        ),
        ({"min_liquidity": 1}, "unknown platform limit 'min_liquidity'"),
        (
            {"max_risk_per_trade_pct": 150},
            "max_risk_per_trade_pct: must be a percentage > 0 and <= 100",
        ),
        ({"max_open_positions": "many"}, "max_open_positions: expected a number"),
        ({"max_notional_per_trade": -5}, "max_notional_per_trade: must be > 0"),
        ({}, "values: name at least one limit"),
        ({"max_open_positions": 20}, "these are the current limits"),
    ],
)
def test_a_bad_request_names_the_field(alice: Any, values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        limit_change_request(user=alice, scope="platform", values=values, reason="x")
    assert not RiskLimitChange.objects.exists()


def test_a_request_needs_a_reason_a_known_scope_and_a_matching_strategy(
    alice: Any, strategy: Strategy
) -> None:
    values = {"max_drawdown_pct": 5}
    with pytest.raises(ValidationError, match="reason"):
        limit_change_request(
            user=alice, scope="strategy", strategy=strategy, values=values, reason=" "
        )
    with pytest.raises(ValidationError, match="scope: use 'platform' or 'strategy'"):
        limit_change_request(user=alice, scope="portfolio", values=values, reason="x")
    with pytest.raises(ValidationError, match="strategy: give a strategy"):
        limit_change_request(user=alice, scope="strategy", values=values, reason="x")
    with pytest.raises(ValidationError, match="strategy: give a strategy"):
        limit_change_request(
            user=alice, scope="platform", strategy=strategy, values=values, reason="x"
        )


def test_strategy_limits_are_created_then_updated_by_approved_changes(
    alice: Any, bob: Any, strategy: Strategy
) -> None:
    other = make_strategy("other")
    first = limit_change_request(
        user=alice,
        scope="strategy",
        strategy=strategy,
        values={"max_drawdown_pct": "5"},
        reason="calm",
    )
    assert strategy_limits_for(strategy=strategy) == StrategyLimits()
    limit_change_approve(change=first, user=bob)
    assert strategy_limits_for(strategy=strategy) == StrategyLimits(max_drawdown_pct=D(5))

    second = limit_change_request(
        user=bob,
        scope="strategy",
        strategy=strategy,
        values={"min_liquidity": 1_000_000},
        reason="liquid",
    )
    limit_change_approve(change=second, user=alice)
    row = StrategyRiskLimit.objects.get(strategy=strategy)
    assert row.as_limits() == StrategyLimits(max_drawdown_pct=D(5), min_liquidity=D(1_000_000))
    assert row.change == second
    assert strategy_limits_for(strategy=other) == StrategyLimits()  # untouched


def test_pending_requests_of_different_strategies_coexist(alice: Any, strategy: Strategy) -> None:
    other = make_strategy("other")
    for s in (strategy, other):
        limit_change_request(
            user=alice, scope="strategy", strategy=s, values={"max_drawdown_pct": 5}, reason="x"
        )
    request_platform(alice)
    assert limit_changes_pending().count() == 3


def test_an_approval_that_fails_to_apply_leaves_nothing_half_written(
    alice: Any, bob: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    change = request_platform(alice)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(RiskLimitSet.objects, "create", broken)
    with pytest.raises(RuntimeError):
        limit_change_approve(change=change, user=bob)
    change.refresh_from_db()
    assert change.status == ChangeStatus.PENDING and change.decided_by is None
    assert RiskLimitSet.objects.filter(is_active=True).count() == 1
    assert limits_current() == RiskLimits()


def test_the_database_refuses_out_of_range_limits() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        RiskLimitSet.objects.filter(is_active=True).update(max_risk_per_trade_pct=D(101))
    with pytest.raises(IntegrityError), transaction.atomic():
        RiskLimitSet.objects.create(is_active=True)  # a second active row


def test_config_overrides_only_tighten_the_stored_limits(alice: Any, bob: Any) -> None:
    version, _ = strategy_version_ensure(
        config=sma_config(risk={"max_position_notional": 30000, "max_drawdown_pct": 4}),
        source="file",
    )
    strategy = version.strategy
    platform, own = limits_effective_for(strategy=strategy)
    assert platform.max_notional_per_trade == D(25000)  # the config may not loosen
    assert own.max_drawdown_pct == D(4)  # but may tighten

    limit_change_approve(change=request_platform(alice, max_notional_per_trade=40000), user=bob)
    platform, _ = limits_effective_for(strategy=strategy)
    assert platform.max_notional_per_trade == D(30000)  # now the config is the stricter one

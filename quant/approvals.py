"""Human-in-the-loop gates (spec): strategy review before backtests, backtest → paper,
paper → live. Each promotion is an ``ApprovalRequest`` with evidence, decided by a user other
than the requester; approving applies the change in the same transaction and records it.
Risk limit changes are the fourth gate and live in the risk app (``RiskLimitChange``).
Demotions (live → paper → research) need no approval: reducing risk is never blocked.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from quant.core.errors import ConflictError, ValidationError
from quant.models import (
    ApprovalKind,
    ApprovalRequest,
    ApprovalStatus,
    ModeChange,
    Strategy,
    StrategyMode,
)

User = AbstractBaseUser | AnonymousUser | None

PROMOTIONS = {
    ApprovalKind.PROMOTE_PAPER: (StrategyMode.RESEARCH, StrategyMode.PAPER),
    ApprovalKind.PROMOTE_LIVE: (StrategyMode.PAPER, StrategyMode.LIVE),
}
ORDER = [StrategyMode.RESEARCH, StrategyMode.PAPER, StrategyMode.LIVE]


def _user(user: User) -> Any:
    return user if getattr(user, "pk", None) else None


def approval_request(
    *,
    strategy: Strategy,
    kind: ApprovalKind | str,
    user: User,
    note: str = "",
    backtest_run_ids: list[int] | None = None,
) -> ApprovalRequest:
    """Open a request for one gate, with its evidence collected and checked."""
    kind = ApprovalKind(kind)
    strategy = Strategy.objects.select_related("current_version").get(pk=strategy.pk)  # fresh
    evidence: dict[str, Any] = {
        "strategy_version": strategy.current_version.number if strategy.current_version else None
    }
    if kind is ApprovalKind.STRATEGY_REVIEW:
        if strategy.reviewed_at is not None:
            raise ConflictError(f"strategy {strategy.name} was already reviewed")
        evidence["config"] = strategy.current_version.config if strategy.current_version else {}
    else:
        if strategy.reviewed_at is None:
            raise ConflictError(f"strategy {strategy.name} must pass its review first")
        source, _ = PROMOTIONS[kind]
        if strategy.mode != source:
            raise ConflictError(
                f"strategy {strategy.name} is in {strategy.mode} mode; "
                f"{kind.label} needs it in {source.value} mode"
            )
        if kind is ApprovalKind.PROMOTE_PAPER:
            evidence["backtest_runs"] = _backtest_evidence(strategy, backtest_run_ids)
        else:
            evidence["paper"] = paper_results(strategy=strategy)
    try:
        with transaction.atomic():
            return ApprovalRequest.objects.create(
                kind=kind,
                strategy=strategy,
                strategy_version=strategy.current_version,
                evidence=evidence,
                note=note,
                requested_by=_user(user),
                requested_at=timezone.now(),
            )
    except IntegrityError:
        raise ConflictError(
            f"a {kind.label} request for {strategy.name} is already pending"
        ) from None


def _backtest_evidence(strategy: Strategy, run_ids: list[int] | None) -> list[dict[str, Any]]:
    from backtests.models import BacktestRun, RunStatus

    runs = BacktestRun.objects.filter(strategy=strategy, status=RunStatus.SUCCEEDED)
    if run_ids:
        runs = runs.filter(pk__in=run_ids)
        missing = set(run_ids) - set(runs.values_list("pk", flat=True))
        if missing:
            raise ValidationError(
                f"backtest_run_ids: {sorted(missing)} are not succeeded runs of {strategy.name}"
            )
    else:
        runs = runs.filter(strategy_version=strategy.current_version).order_by("-finished_at")[:1]
    chosen = list(runs)
    if not chosen:
        raise ValidationError(
            f"promotion to paper needs a succeeded backtest of {strategy.name}'s current version"
        )
    return [
        {
            "run_id": run.pk,
            "version": run.strategy_version.number if run.strategy_version else None,
            "metrics": {
                k: (run.metrics or {}).get(k)
                for k in ("total_return", "sharpe_ratio", "max_drawdown", "total_trades")
            },
        }
        for run in chosen
    ]


def paper_results(*, strategy: Strategy) -> dict[str, Any]:
    """What paper trading has shown so far: since when, fills, realized P&L, positions."""
    from trading.models import Fill, Position

    since = (
        ModeChange.objects.filter(strategy=strategy, to_mode=StrategyMode.PAPER)
        .order_by("-at")
        .values_list("at", flat=True)
        .first()
    )
    fills = Fill.objects.filter(strategy=strategy, mode="paper").aggregate(
        count=Count("id"), commission=Sum("commission")
    )
    positions = Position.objects.filter(strategy=strategy, mode="paper")
    realized = positions.aggregate(total=Sum("realized_pnl"))["total"]
    return {
        "paper_since": since.isoformat() if since else None,
        "fills": fills["count"],
        "realized_pnl": str(realized or 0),
        "open_positions": {p.symbol: str(p.quantity) for p in positions if p.quantity},
    }


def approval_decide(
    *, approval: ApprovalRequest, user: User, approve: bool, note: str = ""
) -> ApprovalRequest:
    """Approve (and apply) or reject a pending request; the requester cannot decide it."""
    decider = _user(user)
    if decider is None:
        raise ValidationError("a decision needs a signed-in user")
    with transaction.atomic():
        locked = ApprovalRequest.objects.select_for_update().get(pk=approval.pk)
        if locked.status != ApprovalStatus.PENDING:
            raise ConflictError(f"this request is already {locked.status}")
        if locked.requested_by_id is not None and locked.requested_by_id == decider.pk:
            raise ConflictError("a request must be decided by a different user than the requester")
        now = timezone.now()
        locked.status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
        locked.decided_by, locked.decided_at, locked.decision_note = decider, now, note
        locked.save()
        if approve:
            _apply(locked, decider, now)
    return locked


def _apply(approval: ApprovalRequest, user: Any, now: Any) -> None:
    strategy = Strategy.objects.select_for_update().get(pk=approval.strategy_id)
    kind = ApprovalKind(approval.kind)
    if kind is ApprovalKind.STRATEGY_REVIEW:
        strategy.reviewed_at = now
        strategy.save(update_fields=["reviewed_at", "updated_at"])
        return
    source, target = PROMOTIONS[kind]
    if strategy.mode != source:
        raise ConflictError(f"strategy {strategy.name} left {source.value} mode meanwhile")
    strategy.mode = target
    strategy.save(update_fields=["mode", "updated_at"])
    ModeChange.objects.create(
        strategy=strategy,
        from_mode=source,
        to_mode=target,
        approval=approval,
        changed_by=user,
        reason=approval.note,
        at=now,
    )


def strategy_demote(
    *, strategy: Strategy, to_mode: StrategyMode | str, user: User, reason: str
) -> Strategy:
    """Move a strategy down (live → paper → research) at once; promotions need approval."""
    to_mode = StrategyMode(to_mode)
    with transaction.atomic():
        locked = Strategy.objects.select_for_update().get(pk=strategy.pk)
        current = StrategyMode(locked.mode)
        if ORDER.index(to_mode) >= ORDER.index(current):
            raise ConflictError(
                f"{current.value} → {to_mode.value} is a promotion: request an approval instead"
            )
        if not reason.strip():
            raise ValidationError("reason: say why the strategy is demoted")
        locked.mode = to_mode
        locked.save(update_fields=["mode", "updated_at"])
        ModeChange.objects.create(
            strategy=locked,
            from_mode=current,
            to_mode=to_mode,
            changed_by=_user(user),
            reason=reason,
            at=timezone.now(),
        )
    return locked


def strategy_require_reviewed(strategy: Strategy) -> None:
    """Gate 1, read from the database (a caller's instance may predate the approval)."""
    if not Strategy.objects.filter(pk=strategy.pk, reviewed_at__isnull=False).exists():
        raise ConflictError(
            f"strategy {strategy.name} has not been reviewed: request a strategy review and have "
            "another user approve it before running backtests"
        )


def strategy_review_builtin(*, strategy: Strategy, note: str) -> ApprovalRequest | None:
    """Record the review of a strategy shipped with the platform (``seed_demo`` only).

    Written as an approved request with neither requester nor decider, so the history says
    plainly that no user of this installation reviewed it."""
    if strategy.reviewed_at is not None:
        return None
    now = timezone.now()
    with transaction.atomic():
        approval = ApprovalRequest.objects.create(
            kind=ApprovalKind.STRATEGY_REVIEW,
            strategy=strategy,
            strategy_version=strategy.current_version,
            status=ApprovalStatus.APPROVED,
            evidence={"builtin": True},
            note=note,
            requested_at=now,
            decided_at=now,
            decision_note=note,
        )
        Strategy.objects.filter(pk=strategy.pk).update(reviewed_at=now)
        strategy.reviewed_at = now
    return approval

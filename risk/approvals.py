"""Human-in-the-loop gates (spec): strategy review before backtests, backtest → paper,
paper → live, and every change of a strategy's mode.

- A review and a promotion belong to one **strategy version**. Storing a new version (a YAML
  file, the API, the dashboard editor) leaves it unreviewed, withdraws the requests still
  pending for older versions, and drops a strategy in paper or live back to research: a
  config nobody approved never trades (``research.services.strategy_version_stored``).
- Every mode change goes through ``strategy_mode_transition``, driven by ``TRANSITIONS``: a
  demotion applies at once (reducing risk is never blocked), a promotion opens an
  ``ApprovalRequest`` with its evidence, and anything else (skipping a gate) is refused.
- A request is decided by a user other than its requester (``four_eyes``, the same rule and
  answer as risk-limit changes); approving applies the change in the same transaction.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import structlog
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from backtests.models import BacktestRun, RunStatus
from quant.errors import ConflictError, GateClosedError, SelfApprovalError, ValidationError
from research.models import (
    ApprovalKind,
    ApprovalRequest,
    ApprovalStatus,
    ModeChange,
    Strategy,
    StrategyMode,
)
from research.services import strategy_mode_set
from trading.models import Fill, Position

log = structlog.get_logger(__name__)

User = AbstractBaseUser | AnonymousUser | None
M = StrategyMode


class Move(enum.Enum):
    DEMOTE = "demote"  # at once, with a reason
    PROMOTE = "promote"  # through an approval request


# (from, to) -> how: a pair not in the table skips a gate and is refused.
TRANSITIONS: dict[tuple[StrategyMode, StrategyMode], tuple[Move, ApprovalKind | None]] = {
    (M.RESEARCH, M.PAPER): (Move.PROMOTE, ApprovalKind.PROMOTE_PAPER),
    (M.PAPER, M.LIVE): (Move.PROMOTE, ApprovalKind.PROMOTE_LIVE),
    (M.LIVE, M.PAPER): (Move.DEMOTE, None),
    (M.LIVE, M.RESEARCH): (Move.DEMOTE, None),
    (M.PAPER, M.RESEARCH): (Move.DEMOTE, None),
}
PROMOTIONS = {kind: pair for pair, (move, kind) in TRANSITIONS.items() if kind is not None}
SELF_APPROVAL = "a request must be decided by another user than the one who made it"


def _user(user: User) -> Any:
    return user if getattr(user, "pk", None) else None


def four_eyes(*, requested_by_id: int | None, decider: User) -> Any:
    """The deciding user, after the four-eyes rule: signed in, and not the requester."""
    decider = _user(decider)
    if decider is None:
        raise ValidationError("a decision needs a signed-in user")
    if requested_by_id is not None and requested_by_id == decider.pk:
        raise SelfApprovalError(SELF_APPROVAL)
    return decider


@dataclass(frozen=True)
class ModeTransition:
    """What ``strategy_mode_transition`` did: ``applied`` (a demotion) or ``pending_approval``
    (a promotion, with its request)."""

    strategy: Strategy
    from_mode: StrategyMode
    to_mode: StrategyMode
    approval: ApprovalRequest | None

    @property
    def status(self) -> str:
        return "pending_approval" if self.approval is not None else "applied"


def strategy_mode_transition(
    *,
    strategy: Strategy,
    to_mode: StrategyMode | str,
    user: User,
    reason: str,
    backtest_run_ids: list[int] | None = None,
) -> ModeTransition:
    """Move a strategy between research, paper and live, one gate at a time."""
    try:
        target = StrategyMode(to_mode)
    except ValueError:
        raise ValidationError(
            f"to_mode: {to_mode!r} is not a mode; use one of {', '.join(StrategyMode.values)}"
        ) from None
    current = StrategyMode(Strategy.objects.values_list("mode", flat=True).get(pk=strategy.pk))
    if current == target:
        raise ConflictError(f"strategy {strategy.name} is already in {current.value} mode")
    how = TRANSITIONS.get((current, target))
    if how is None:
        raise GateClosedError(
            f"{current.value} → {target.value} skips a gate: promote to paper first",
            details={"from_mode": current.value, "to_mode": target.value},
        )
    move, kind = how
    if move is Move.DEMOTE:
        demoted = strategy_demote(strategy=strategy, to_mode=target, user=user, reason=reason)
        return ModeTransition(demoted, current, target, None)
    assert kind is not None
    approval = approval_request(
        strategy=strategy, kind=kind, user=user, note=reason, backtest_run_ids=backtest_run_ids
    )
    return ModeTransition(strategy, current, target, approval)


def approval_request(
    *,
    strategy: Strategy,
    kind: ApprovalKind | str,
    user: User,
    note: str = "",
    backtest_run_ids: list[int] | None = None,
) -> ApprovalRequest:
    """Open a request for one gate for the strategy's current version, with its evidence."""
    kind = ApprovalKind(kind)
    strategy = Strategy.objects.select_related("current_version").get(pk=strategy.pk)  # fresh
    version = strategy.current_version
    if version is None:
        raise ConflictError(f"strategy {strategy.name} has no config version yet")
    evidence: dict[str, Any] = {"strategy_version": version.number}
    if kind is ApprovalKind.STRATEGY_REVIEW:
        if strategy.is_reviewed:
            raise ConflictError(
                f"version {version.number} of strategy {strategy.name} was already reviewed"
            )
        evidence["config"] = version.config
    else:
        if not strategy.is_reviewed:
            raise GateClosedError(
                f"strategy {strategy.name} must pass its review first "
                f"(version {version.number} is not reviewed)"
            )
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
                strategy_version=version,
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
    with transaction.atomic():
        locked = ApprovalRequest.objects.select_for_update().get(pk=approval.pk)
        if locked.status != ApprovalStatus.PENDING:
            raise ConflictError(f"this request is already {locked.status}")
        decider = four_eyes(requested_by_id=locked.requested_by_id, decider=user)
        now = timezone.now()
        locked.status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
        locked.decided_by, locked.decided_at, locked.decision_note = decider, now, note
        locked.save()
        if approve:
            _apply(locked, decider, now)
    log.info(
        "approval.decided",
        approval_id=locked.pk,
        kind=locked.kind,
        status=locked.status,
        strategy_id=locked.strategy_id,
    )
    return locked


def _apply(approval: ApprovalRequest, user: Any, now: Any) -> None:
    strategy = Strategy.objects.select_for_update().get(pk=approval.strategy_id)
    if approval.strategy_version_id != strategy.current_version_id:
        # Storing a version withdraws older requests; this guards a request written before.
        raise ConflictError(
            "this request names another version than the strategy's current one: "
            "request it again for the current version"
        )
    kind = ApprovalKind(approval.kind)
    if kind is ApprovalKind.STRATEGY_REVIEW:
        strategy.reviewed_version_id = approval.strategy_version_id
        strategy.reviewed_at = now
        strategy.save(update_fields=["reviewed_version", "reviewed_at", "updated_at"])
        return
    if not strategy.is_reviewed:
        raise GateClosedError(f"strategy {strategy.name}'s current version is not reviewed")
    source, target = PROMOTIONS[kind]
    if strategy.mode != source:
        raise ConflictError(f"strategy {strategy.name} left {source.value} mode meanwhile")
    strategy_mode_set(strategy, target, user=user, reason=approval.note, at=now, approval=approval)


def strategy_demote(
    *, strategy: Strategy, to_mode: StrategyMode | str, user: User, reason: str
) -> Strategy:
    """Move a strategy down (live → paper → research) at once; promotions need approval."""
    to_mode = StrategyMode(to_mode)
    if not reason.strip():
        raise ValidationError("reason: say why the strategy is demoted")
    with transaction.atomic():
        locked = Strategy.objects.select_for_update().get(pk=strategy.pk)
        current = StrategyMode(locked.mode)
        if current == to_mode:
            raise ConflictError(f"strategy {locked.name} is already in {current.value} mode")
        if TRANSITIONS.get((current, to_mode), (None, None))[0] is not Move.DEMOTE:
            raise ConflictError(
                f"{current.value} → {to_mode.value} is a promotion: request an approval instead"
            )
        strategy_mode_set(locked, to_mode, user=_user(user), reason=reason, at=timezone.now())
    return locked

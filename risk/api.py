"""``/v1/controls`` (kill switch, mode transitions, approvals) and ``/v1/risk`` (limits and
their approval): the risk app's routers, over the same services as the admin and commands."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, Query, Router, Schema, Status
from pydantic import ConfigDict, create_model

from common.api import (
    MAX_ID,
    Data,
    DecimalString,
    Id,
    Out,
    Page,
    PageParams,
    paginate,
    responses,
)
from common.auth import Role, acting_user, client_ip, require_role, username
from quant.errors import NotFoundError, ValidationError
from quant.risk.limits import PLATFORM_FIELDS, STRATEGY_FIELDS
from quant.risk.state import TradingState
from research.selectors import approval_get, strategy_by_id
from research.selectors import approvals_list as approvals
from risk import selectors
from risk.approvals import approval_decide as decide
from risk.approvals import strategy_mode_transition
from risk.gateway import trading_state
from risk.models import KillSwitchState, RiskLimitChange, StrategyRiskLimit
from risk.services import (
    killswitch_activate,
    killswitch_deactivate,
    limit_change_approve,
    limit_change_reject,
)
from risk.services import limit_change_request as request_change
from trading.services.pauses import strategy_pause_lift

controls_router = Router(tags=["controls"])
risk_router = Router(tags=["risk"])


class ApprovalOut(Out):
    id: int
    kind: str
    status: str
    strategy_id: int
    strategy_version: int | None
    note: str
    evidence: dict[str, Any]
    requested_by: str | None
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str


def approval_out(approval: Any) -> dict[str, Any]:
    return {
        "id": approval.pk,
        "kind": approval.kind,
        "status": approval.status,
        "strategy_id": approval.strategy_id,
        "strategy_version": approval.strategy_version.number if approval.strategy_version else None,
        "note": approval.note,
        "evidence": approval.evidence or {},
        "requested_by": username(approval.requested_by),
        "requested_at": approval.requested_at,
        "decided_by": username(approval.decided_by),
        "decided_at": approval.decided_at,
        "decision_note": approval.decision_note,
    }


# --- kill switch ------------------------------------------------------------------------


class KillSwitchOut(Out):
    scope: str
    strategy_id: int | None
    strategy_name: str | None
    active: bool
    mode: str
    reason: str
    source: str
    activated_by: str | None
    activated_at: datetime | None
    deactivated_by: str | None
    deactivated_at: datetime | None
    updated_at: datetime


class KillSwitchIn(Schema):
    """Activate with a reason (not blank); deactivate with the admin code."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "properties": {"action": {"const": "activate"}, "reason": {"pattern": "\\S"}},
                    "required": ["action", "reason"],
                },
                {
                    "properties": {
                        "action": {"const": "deactivate"},
                        "admin_code": {"minLength": 1},
                    },
                    "required": ["action", "admin_code"],
                },
            ]
        }
    )

    action: Literal["activate", "deactivate"]
    scope: str = Field(
        "global", min_length=1, max_length=100, description="global, or a strategy id or name"
    )
    reason: str = Field("", max_length=2000, description="required to activate")
    flatten: bool = Field(False, description="also close every position (activate)")
    admin_code: str = Field("", max_length=256, description="required to deactivate")


def kill_switch_out(state: KillSwitchState) -> dict[str, Any]:
    return {
        "scope": state.label,
        "strategy_id": state.strategy_id,
        "strategy_name": state.strategy.name if state.strategy else None,
        "active": state.active,
        "mode": state.mode,
        "reason": state.reason,
        "source": state.source,
        "activated_by": username(state.activated_by),
        "activated_at": state.activated_at,
        "deactivated_by": username(state.deactivated_by),
        "deactivated_at": state.deactivated_at,
        "updated_at": state.updated_at,
    }


@controls_router.get(
    "/kill-switch", response=responses(200, Data(list[KillSwitchOut], "KillSwitchList"))
)
def kill_switch_status(request: HttpRequest) -> dict[str, Any]:
    """Every kill-switch state: the global one first."""
    require_role(request, Role.VIEWER)
    return {"data": [kill_switch_out(s) for s in selectors.killswitch_status()]}


@controls_router.post(
    "/kill-switch", response=responses(200, Data(KillSwitchOut), 403, 404, 409, 422, 429)
)
def kill_switch_set(request: HttpRequest, payload: KillSwitchIn) -> dict[str, Any]:
    """Activate (operator; a reason is required) or deactivate (admin, with the admin code)
    the kill switch of one scope. A wrong admin code is refused with 403 and audited; after a
    few, attempts wait a back-off (429 with Retry-After) and an alert is raised."""

    if payload.action == "activate":
        principal = require_role(request, Role.OPERATOR)
        state = killswitch_activate(
            scope=payload.scope,
            reason=payload.reason,
            flatten=payload.flatten,
            user=acting_user(principal),
        )
    else:
        principal = require_role(request, Role.ADMIN)
        state = killswitch_deactivate(
            admin_code=payload.admin_code,
            scope=payload.scope,
            user=acting_user(principal),
            client=client_ip(request),
        )
    state = KillSwitchState.objects.select_related(
        "strategy", "activated_by", "deactivated_by"
    ).get(pk=state.pk)
    return {"data": kill_switch_out(state)}


# --- trading state and strategy pauses ---------------------------------------------------


class PauseOut(Out):
    check: str
    reason: str
    since: datetime
    until: datetime | None


class TradingStateOut(Out):
    strategy_id: int
    strategy_name: str
    strategy_mode: str
    mode: str
    level: Literal["active", "reducing", "halted"]
    reason: str
    gate_open: bool
    kill_switch: bool
    safe_mode: str | None
    pause: PauseOut | None


class TradingStateFilters(Schema):
    strategy_id: int | None = Field(None, ge=1, le=MAX_ID)


class PauseLiftIn(Schema):
    strategy_id: int = Field(ge=1, le=MAX_ID)
    mode: Literal["paper", "live"]
    reason: str = Field(min_length=1, max_length=2000)


def trading_state_out(state: TradingState) -> dict[str, Any]:
    pause = state.pause
    return {
        "strategy_id": state.strategy_id,
        "strategy_name": state.strategy_name,
        "strategy_mode": state.strategy_mode,
        "mode": state.order_mode,
        "level": state.level.value,
        "reason": state.describe(),
        "gate_open": state.gate is None,
        "kill_switch": state.kill_switch_refusal is not None,
        "safe_mode": state.safe_mode_reason,
        "pause": None
        if pause is None
        else {
            "check": pause.check,
            "reason": pause.reason,
            "since": pause.since,
            "until": pause.until,
        },
    }


@controls_router.get(
    "/trading-state", response=responses(200, Data(list[TradingStateOut], "TradingStates"), 422)
)
def trading_state_list(request: HttpRequest, filters: Query[TradingStateFilters]) -> dict[str, Any]:
    """May each strategy act now, per trading mode: ``active`` (open and close), ``reducing``
    (exits only: safe mode or a pause) or ``halted`` (gate closed or kill switch), and why."""
    require_role(request, Role.VIEWER)
    states = selectors.trading_states(now=timezone.now(), strategy_id=filters.strategy_id)
    return {"data": [trading_state_out(s) for s in states]}


@controls_router.post(
    "/pauses/lift", response=responses(200, Data(TradingStateOut), 403, 404, 409, 422)
)
def pause_lift(request: HttpRequest, payload: PauseLiftIn) -> dict[str, Any]:
    """Lift a strategy's pause in one mode (admin; a reason is required). The breached
    measure starts afresh: the drawdown from today's equity, the session's loss from zero."""

    principal = require_role(request, Role.ADMIN)
    strategy = strategy_by_id(strategy_id=payload.strategy_id)
    strategy_pause_lift(
        strategy=strategy, mode=payload.mode, user=acting_user(principal), reason=payload.reason
    )
    state = trading_state(strategy_id=strategy.pk, mode=payload.mode, now=timezone.now())
    return {"data": trading_state_out(state)}


# --- mode transitions and approvals -----------------------------------------------------


class ModeTransitionIn(Schema):
    strategy_id: int = Field(ge=1, le=MAX_ID)
    to_mode: Literal["research", "paper", "live"]
    reason: str = Field(min_length=1, max_length=2000)
    backtest_run_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        None, max_length=100, description="evidence for research → paper (default: recent runs)"
    )


class ModeTransitionOut(Out):
    strategy_id: int
    from_mode: str
    to_mode: str
    mode: str
    status: Literal["applied", "pending_approval"]
    approval: ApprovalOut | None


class DecisionIn(Schema):
    approve: bool
    note: str = Field("", max_length=2000)


class ApprovalFilters(PageParams):
    status: Literal["pending", "approved", "rejected", "withdrawn"] | None = None
    strategy_id: int | None = Field(None, ge=1, le=MAX_ID)


@controls_router.post(
    "/mode-transition",
    response={
        **responses(200, Data(ModeTransitionOut), 403, 404, 409, 422),
        202: Data(ModeTransitionOut),
    },
)
def mode_transition(request: HttpRequest, payload: ModeTransitionIn) -> Status[Any]:
    """Move a strategy between research, paper and live (admin). A demotion applies at once
    (200); a promotion opens an approval request that a second admin decides (202), with its
    evidence: backtest runs for paper, paper results for live. One gate at a time."""

    principal = require_role(request, Role.ADMIN)
    done = strategy_mode_transition(
        strategy=strategy_by_id(strategy_id=payload.strategy_id),
        to_mode=payload.to_mode,
        user=acting_user(principal),
        reason=payload.reason,
        backtest_run_ids=payload.backtest_run_ids,
    )
    approval = done.approval
    data = {
        "strategy_id": done.strategy.pk,
        "from_mode": done.from_mode.value,
        "to_mode": done.to_mode.value,
        "mode": done.from_mode.value if approval is not None else done.to_mode.value,
        "status": done.status,
        "approval": approval_out(approval_get(approval_id=approval.pk)) if approval else None,
    }
    return Status(202 if approval is not None else 200, {"data": data})


@controls_router.get("/approvals", response=responses(200, Page(ApprovalOut), 422))
def approvals_list(request: HttpRequest, filters: Query[ApprovalFilters]) -> dict[str, Any]:
    """Approval requests (strategy review, promotions), newest first."""

    require_role(request, Role.VIEWER)
    queryset = approvals(status=filters.status, strategy_id=filters.strategy_id)
    return paginate(queryset, filters, lambda rows: [approval_out(a) for a in rows])


@controls_router.post(
    "/approvals/{approval_id}/decide",
    response=responses(200, Data(ApprovalOut), 403, 404, 409, 422),
)
def approval_decide(request: HttpRequest, approval_id: Id, payload: DecisionIn) -> dict[str, Any]:
    """Approve (and apply) or reject a pending request (admin; not the requester)."""

    principal = require_role(request, Role.ADMIN)
    approval = approval_get(approval_id=approval_id)
    decide(
        approval=approval, user=acting_user(principal), approve=payload.approve, note=payload.note
    )
    return {"data": approval_out(approval_get(approval_id=approval_id))}


# --- /v1/risk: limits -------------------------------------------------------------------


class LimitsOut(Out):
    platform: dict[str, str]
    strategies: list[dict[str, Any]]
    pending_changes: list[dict[str, Any]]


class LimitChangeOut(Out):
    id: int
    scope: str
    strategy_id: int | None
    strategy_name: str | None
    values: dict[str, Any]
    previous_values: dict[str, Any]
    reason: str
    status: str
    requested_by: str | None
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str


_LIMIT_TYPES: dict[str, Any] = {
    "pct": Annotated[Decimal, DecimalString(3, 6, percent=True)],
    "positive": Annotated[Decimal, DecimalString(14, 6, positive=True)],
    "non_negative": Annotated[Decimal, DecimalString(14, 6)],
    "count": Annotated[int, Field(ge=1, le=100_000)],
}
# Every limit by name, each optional and typed (percentages as "2.5", money as "25000",
# counts as integers); an unknown name is refused.
_LIMIT_FIELDS: dict[str, Any] = {
    name: (_LIMIT_TYPES[spec.kind], None)
    for name, spec in {**PLATFORM_FIELDS, **STRATEGY_FIELDS}.items()
}
LimitValuesIn: Any = create_model(
    "LimitValuesIn",
    __config__=ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1}),
    **_LIMIT_FIELDS,
)


class LimitChangeIn(Schema):
    """Platform limits with ``scope: platform``; a strategy's limits (max_allocation_pct,
    max_drawdown_pct, max_daily_loss_pct, min_liquidity) with ``scope: strategy`` and its
    ``strategy_id``. The new set as a whole must stay valid and differ from the current one
    (422 otherwise, naming the limit)."""

    scope: Literal["platform", "strategy"]
    strategy_id: int | None = Field(None, ge=1, le=MAX_ID)
    values: LimitValuesIn = Field(description="new value per limit name (at least one)")
    reason: str = Field(min_length=1, max_length=2000)


def _plain(values: Any) -> dict[str, str]:
    return {k: str(v) for k, v in values.items()}


def limit_change_out(change: RiskLimitChange) -> dict[str, Any]:
    return {
        "id": change.pk,
        "scope": change.scope,
        "strategy_id": change.strategy_id,
        "strategy_name": change.strategy.name if change.strategy else None,
        "values": change.values,
        "previous_values": change.previous_values,
        "reason": change.reason,
        "status": change.status,
        "requested_by": username(change.requested_by),
        "requested_at": change.requested_at,
        "decided_by": username(change.decided_by),
        "decided_at": change.decided_at,
        "decision_note": change.decision_note,
    }


def _change(change_id: int) -> RiskLimitChange:
    change = (
        RiskLimitChange.objects.select_related("strategy", "requested_by", "decided_by")
        .filter(pk=change_id)
        .first()
    )
    if change is None:
        raise NotFoundError(f"no limit change with id {change_id}")
    return change


@risk_router.get("/limits", response=responses(200, Data(LimitsOut)))
def limits(request: HttpRequest) -> dict[str, Any]:
    """The platform limits in force, each strategy's stored limits and the pending changes."""
    from dataclasses import asdict

    require_role(request, Role.VIEWER)
    rows = StrategyRiskLimit.objects.select_related("strategy").order_by("strategy__name")
    return {
        "data": {
            "platform": _plain(asdict(selectors.limits_current())),
            "strategies": [
                {
                    "strategy_id": r.strategy_id,
                    "strategy_name": r.strategy.name,
                    **_plain(asdict(r.as_limits())),
                }
                for r in rows
            ],
            "pending_changes": [
                limit_change_out(c)
                for c in selectors.limit_changes_pending().select_related("decided_by")
            ],
        }
    }


@risk_router.post("/limit-changes", response=responses(201, Data(LimitChangeOut), 403, 404, 422))
def limit_change_request(request: HttpRequest, payload: LimitChangeIn) -> Status[Any]:
    """Ask for new limits (admin); a second admin approves before they apply."""

    principal = require_role(request, Role.ADMIN)
    if payload.scope == "strategy" and payload.strategy_id is None:
        raise ValidationError("strategy_id: strategy limits need a strategy")
    strategy = strategy_by_id(strategy_id=payload.strategy_id) if payload.strategy_id else None
    change = request_change(
        user=acting_user(principal),
        scope=payload.scope,
        strategy=strategy,
        values=payload.values.model_dump(exclude_unset=True),
        reason=payload.reason,
    )
    return Status(201, {"data": limit_change_out(_change(change.pk))})


@risk_router.post(
    "/limit-changes/{change_id}/decide",
    response=responses(200, Data(LimitChangeOut), 403, 404, 409, 422),
)
def limit_change_decide(request: HttpRequest, change_id: Id, payload: DecisionIn) -> dict[str, Any]:
    """Approve (and apply at once) or reject a pending limit change (admin; not the requester)."""

    principal = require_role(request, Role.ADMIN)
    change, user = _change(change_id), acting_user(principal)
    if payload.approve:
        limit_change_approve(change=change, user=user, note=payload.note)
    else:
        limit_change_reject(change=change, user=user, note=payload.note)
    return {"data": limit_change_out(_change(change_id))}

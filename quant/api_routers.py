"""``/v1/auth``, ``/v1/strategies`` and ``/v1/models``: the research app's routers."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

import yaml
from django.contrib.auth import authenticate
from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema, Status

from quant import selectors
from quant.api import Data, Id, Out, Page, PageParams, accepted, errors, paginate, responses
from quant.auth import (
    REFRESH,
    AuthenticationFailed,
    Principal,
    Role,
    login_throttle,
    principal_for,
    require_role,
    token_pair,
    token_principal,
)
from quant.core.errors import ValidationError
from quant.models import ModelArtifact, Strategy, StrategyMode
from quant.strategies.config import config_parse, config_validate

# --- /v1/auth ---------------------------------------------------------------------------

auth_router = Router(tags=["auth"])


class LoginIn(Schema):
    username: str = Field(min_length=1, max_length=150)
    password: str = Field(min_length=1, max_length=512)


class RefreshIn(Schema):
    refresh_token: str = Field(min_length=1, max_length=4096)


class TokensOut(Out):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int
    role: str
    username: str


class MeOut(Out):
    id: int
    username: str
    role: str


@auth_router.post(
    "/login", auth=None, throttle=[login_throttle()], response=responses(200, Data(TokensOut), 422)
)
def login(request: HttpRequest, payload: LoginIn) -> dict[str, Any]:
    """Exchange a username and password for an access token and a refresh token."""
    user = authenticate(request, username=payload.username, password=payload.password)
    principal = principal_for(user.pk) if user is not None else None
    if principal is None:
        raise AuthenticationFailed("wrong username or password")
    return {"data": token_pair(principal)}


@auth_router.post(
    "/refresh",
    auth=None,
    throttle=[login_throttle()],
    response=responses(200, Data(TokensOut), 422),
)
def refresh(request: HttpRequest, payload: RefreshIn) -> dict[str, Any]:
    """A new token pair for a valid refresh token (the user must still be active)."""
    return {"data": token_pair(token_principal(payload.refresh_token, REFRESH))}


@auth_router.get("/me", response=responses(200, Data(MeOut)))
def me(request: HttpRequest) -> dict[str, Any]:
    principal = require_role(request, Role.VIEWER)
    return {
        "data": {
            "id": principal.user_id,
            "username": principal.username,
            "role": principal.role.label,
        }
    }


def acting_user(principal: Principal) -> Any:
    """The Django user behind a principal, for services that record who acted."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(pk=principal.user_id)


# --- /v1/strategies ---------------------------------------------------------------------

strategies_router = Router(tags=["strategies"])


class StrategyOut(Out):
    id: int
    name: str
    class_name: str
    description: str
    symbols: list[str]
    timeframe: str
    mode: str
    is_active: bool
    reviewed: bool = Field(description="the current version passed its review (gate 1)")
    reviewed_version: int | None
    reviewed_at: datetime | None
    current_version: int | None
    source_path: str
    created_at: datetime
    updated_at: datetime


class VersionOut(Out):
    number: int
    content_hash: str
    source: str
    created_at: datetime


class ModeChangeOut(Out):
    from_mode: str
    to_mode: str
    reason: str
    changed_by: str | None
    approval_id: int | None
    at: datetime


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


class RunSummaryOut(Out):
    id: int
    status: str
    created_at: datetime
    finished_at: datetime | None
    metrics: dict[str, Any] | None


class StrategyDetailOut(StrategyOut):
    config: dict[str, Any] | None
    config_yaml: str
    versions: list[VersionOut]
    mode_changes: list[ModeChangeOut]
    approvals: list[ApprovalOut]
    recent_runs: list[RunSummaryOut]
    paper: dict[str, Any]


class StrategyFilters(PageParams):
    status: Literal["active", "inactive", "all"] = "all"
    mode: Literal["research", "paper", "live"] | None = None


class StrategyPatchIn(Schema):
    config: dict[str, Any] | None = Field(None, description="the full config as a mapping")
    config_yaml: str | None = Field(None, max_length=200_000, description="or as YAML text")
    is_active: bool | None = None


def strategy_out(strategy: Strategy) -> dict[str, Any]:
    return {
        "id": strategy.pk,
        "name": strategy.name,
        "class_name": strategy.class_name,
        "description": strategy.description,
        "symbols": list(strategy.symbols or []),
        "timeframe": strategy.timeframe,
        "mode": strategy.mode,
        "is_active": strategy.is_active,
        "reviewed": strategy.is_reviewed,
        "reviewed_version": strategy.reviewed_version.number if strategy.reviewed_version else None,
        "reviewed_at": strategy.reviewed_at,
        "current_version": strategy.current_version.number if strategy.current_version else None,
        "source_path": strategy.source_path,
        "created_at": strategy.created_at,
        "updated_at": strategy.updated_at,
    }


def _username(user: Any) -> str | None:
    return user.get_username() if user is not None else None


def approval_out(approval: Any) -> dict[str, Any]:
    return {
        "id": approval.pk,
        "kind": approval.kind,
        "status": approval.status,
        "strategy_id": approval.strategy_id,
        "strategy_version": approval.strategy_version.number if approval.strategy_version else None,
        "note": approval.note,
        "evidence": approval.evidence or {},
        "requested_by": _username(approval.requested_by),
        "requested_at": approval.requested_at,
        "decided_by": _username(approval.decided_by),
        "decided_at": approval.decided_at,
        "decision_note": approval.decision_note,
    }


def strategy_detail_out(strategy: Strategy) -> dict[str, Any]:
    from quant.approvals import paper_results

    detail = selectors.strategy_detail(strategy=strategy)
    config = strategy.current_version.config if strategy.current_version else None
    return {
        **strategy_out(strategy),
        "config": config,
        "config_yaml": yaml.safe_dump(config, sort_keys=False) if config else "",
        "versions": [
            {
                "number": v.number,
                "content_hash": v.content_hash,
                "source": v.source,
                "created_at": v.created_at,
            }
            for v in detail.versions
        ],
        "mode_changes": [
            {
                "from_mode": c.from_mode,
                "to_mode": c.to_mode,
                "reason": c.reason,
                "changed_by": _username(c.changed_by),
                "approval_id": c.approval_id,
                "at": c.at,
            }
            for c in detail.mode_changes
        ],
        "approvals": [approval_out(a) for a in detail.approvals],
        "recent_runs": [
            {
                "id": r.pk,
                "status": r.status,
                "created_at": r.created_at,
                "finished_at": r.finished_at,
                "metrics": r.metrics,
            }
            for r in detail.recent_runs
        ],
        "paper": paper_results(strategy=strategy),
    }


@strategies_router.get("", response=responses(200, Page(StrategyOut), 422))
def strategies_list(request: HttpRequest, filters: Query[StrategyFilters]) -> dict[str, Any]:
    """Configured strategies, by name."""
    require_role(request, Role.VIEWER)
    active = {"active": True, "inactive": False, "all": None}[filters.status]
    queryset = selectors.strategies_list(is_active=active)
    if filters.mode:
        queryset = queryset.filter(mode=filters.mode)
    return paginate(queryset, filters, lambda rows: [strategy_out(s) for s in rows])


@strategies_router.get("/{strategy_id}", response=responses(200, Data(StrategyDetailOut), 404, 422))
def strategy_get(request: HttpRequest, strategy_id: Id) -> dict[str, Any]:
    """One strategy: its current config, versions, mode and approval history, recent runs."""
    require_role(request, Role.VIEWER)
    return {"data": strategy_detail_out(selectors.strategy_by_id(strategy_id=strategy_id))}


@strategies_router.patch(
    "/{strategy_id}", response=responses(200, Data(StrategyDetailOut), 403, 404, 409, 422)
)
def strategy_patch(
    request: HttpRequest, strategy_id: Id, payload: StrategyPatchIn
) -> dict[str, Any]:
    """Change the config (validated exactly like a YAML file; a new version when it differs)
    or switch the strategy on or off. Admin only. A new version is unreviewed: a strategy in
    paper or live mode returns to research until it passes the gates again."""
    from quant.services import strategy_active_set, strategy_config_update

    principal = require_role(request, Role.ADMIN)
    strategy = selectors.strategy_by_id(strategy_id=strategy_id)
    if payload.config is not None and payload.config_yaml is not None:
        raise ValidationError("send either config or config_yaml, not both")
    if payload.config is None and payload.config_yaml is None and payload.is_active is None:
        raise ValidationError("nothing to change: send config, config_yaml or is_active")
    source = f"strategy {strategy.name}"
    if payload.config_yaml is not None:
        strategy_config_update(
            strategy=strategy, config=config_parse(payload.config_yaml, source=source)
        )
    elif payload.config is not None:
        strategy_config_update(
            strategy=strategy, config=config_validate(payload.config, source=source)
        )
    if payload.is_active is not None:
        strategy_active_set(
            strategy=strategy, is_active=payload.is_active, user=acting_user(principal)
        )
    return {"data": strategy_detail_out(selectors.strategy_by_id(strategy_id=strategy_id))}


# --- /v1/models -------------------------------------------------------------------------

models_router = Router(tags=["models"])


class ModelOut(Out):
    id: int
    name: str
    kind: str
    status: str
    feature_set: str | None
    feature_set_version: str | None
    symbols: list[str]
    timeframe: str
    train_start: datetime | None
    train_end: datetime | None
    label: dict[str, Any]
    params: dict[str, Any]
    validation: dict[str, Any]
    error: str
    created_at: datetime


class ModelDetailOut(ModelOut):
    feature_names: list[str]
    importance: dict[str, Any]
    file_hash: str
    finished_at: datetime | None


class ModelFilters(PageParams):
    status: Literal["training", "ready", "failed"] | None = None
    name: str | None = Field(None, max_length=100)


class ModelTrainIn(Schema):
    name: str = Field(min_length=1, max_length=100)
    kind: str = Field("lightgbm", max_length=40)
    feature_set: str = Field(min_length=1, max_length=100, description="feature set name")
    symbols: list[str] = Field(min_length=1, max_length=100)
    timeframe: str = Field("1Day", max_length=8)
    start: date
    end: date
    label: str = Field(
        "forward_return:horizon=5",
        max_length=200,
        description="as train_model --label, e.g. forward_return:horizon=5",
    )
    params: dict[str, Any] = Field(default_factory=dict)
    n_splits: int = Field(5, ge=2, le=20)
    embargo_bars: int = Field(5, ge=0, le=10_000)


class Accepted(Out):
    id: int
    status: str
    url: str


def model_out(artifact: ModelArtifact, *, detail: bool = False) -> dict[str, Any]:
    fsv = artifact.feature_set_version
    out: dict[str, Any] = {
        "id": artifact.pk,
        "name": artifact.name,
        "kind": artifact.kind,
        "status": artifact.status,
        "feature_set": fsv.feature_set.name if fsv else None,
        "feature_set_version": fsv.version if fsv else None,
        "symbols": list(artifact.symbols or []),
        "timeframe": artifact.timeframe,
        "train_start": artifact.train_start,
        "train_end": artifact.train_end,
        "label": artifact.label or {},
        "params": artifact.params or {},
        "validation": artifact.validation or {},
        "error": artifact.error,
        "created_at": artifact.created_at,
    }
    if detail:
        out["feature_names"] = list(artifact.feature_names or [])
        out["importance"] = artifact.importance or {}
        out["file_hash"] = artifact.file_hash
        out["finished_at"] = artifact.finished_at
    return out


@models_router.get("", response=responses(200, Page(ModelOut), 422))
def models_list(request: HttpRequest, filters: Query[ModelFilters]) -> dict[str, Any]:
    """Trained (and training) model artifacts, newest first."""
    require_role(request, Role.VIEWER)
    queryset = selectors.model_artifacts_list(status=filters.status, name=filters.name)
    return paginate(queryset, filters, lambda rows: [model_out(a) for a in rows])


@models_router.get("/{model_id}", response=responses(200, Data(ModelDetailOut), 404, 422))
def model_get(request: HttpRequest, model_id: Id) -> dict[str, Any]:
    require_role(request, Role.VIEWER)
    return {"data": model_out(selectors.model_artifact_get(artifact_id=model_id), detail=True)}


@models_router.post("", response=responses(202, Data(Accepted), 403, 404, 422))
def model_train(request: HttpRequest, response: HttpResponse, payload: ModelTrainIn) -> Status[Any]:
    """Queue the training of a model (purged k-fold validation); poll the Location."""
    from django.db import transaction

    from quant.ml.training import label_parse, model_artifact_create, model_artifact_submit

    principal = require_role(request, Role.OPERATOR)
    version = selectors.feature_set_version_current(name=payload.feature_set)
    with transaction.atomic():
        artifact = model_artifact_create(
            name=payload.name,
            kind=payload.kind,
            feature_set_version=version,
            symbols=payload.symbols,
            timeframe=payload.timeframe,
            start=_day_start(payload.start),
            end=_day_start(payload.end),
            label=label_parse(payload.label),
            params=payload.params,
            n_splits=payload.n_splits,
            embargo_bars=payload.embargo_bars,
            user=acting_user(principal),
        )
        model_artifact_submit(artifact=artifact)
    return accepted(response, f"/v1/models/{artifact.pk}", artifact)


def _day_start(day: date) -> datetime:
    from datetime import UTC

    return datetime(day.year, day.month, day.day, tzinfo=UTC)


__all__ = [
    "Accepted",
    "StrategyMode",
    "acting_user",
    "auth_router",
    "errors",
    "models_router",
    "strategies_router",
]

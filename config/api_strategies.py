"""``/v1/strategies``: each strategy with its config, versions, mode history, approvals,
backtest runs and paper results. It reads across apps (research, backtests, risk), so it is
the shell's; every write goes to the one service that owns it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import yaml
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from backtests.models import BacktestRun
from common.api import Data, Id, Out, Page, PageParams, paginate, responses
from common.auth import Role, acting_user, require_role, username
from quant.errors import ValidationError
from quant.strategies.config import config_parse, config_validate
from research import selectors
from research.models import Strategy
from research.services import strategy_active_set, strategy_config_update
from risk.api import ApprovalOut, approval_out
from risk.approvals import paper_results

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


def strategy_detail_out(strategy: Strategy) -> dict[str, Any]:
    detail = selectors.strategy_history(strategy=strategy)
    runs = (
        BacktestRun.objects.filter(strategy=strategy)
        .defer("equity_curve", "open_positions")
        .order_by("-created_at", "-id")[:10]
    )
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
                "changed_by": username(c.changed_by),
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
            for r in runs
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

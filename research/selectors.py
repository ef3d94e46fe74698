"""Reads of the research app: strategies and their config versions."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F, QuerySet

from quant.errors import NotFoundError
from research.models import (
    ApprovalRequest,
    FeatureSetVersion,
    ModeChange,
    ModelArtifact,
    Strategy,
    StrategyVersion,
)


def strategies_list(*, is_active: bool | None = None) -> QuerySet[Strategy]:
    qs = Strategy.objects.select_related("current_version", "reviewed_version").order_by("name")
    if is_active is not None:
        qs = qs.filter(is_active=is_active)
    return qs


def strategy_get(*, name: str) -> Strategy:
    strategy = strategies_list().filter(name=name).first()
    if strategy is None:
        raise NotFoundError(f"no strategy named {name!r}", details={"name": name})
    return strategy


def strategy_version_get(*, strategy: Strategy, number: int | None = None) -> StrategyVersion:
    """Version ``number`` of the strategy, or its current version when ``number`` is None."""
    if number is None:
        if strategy.current_version_id is None:
            raise NotFoundError(f"strategy {strategy.name!r} has no version yet")
        number_filter = {"pk": strategy.current_version_id}
    else:
        number_filter = {"number": number}
    version = (
        StrategyVersion.objects.select_related("strategy")
        .filter(strategy=strategy, **number_filter)
        .first()
    )
    if version is None:
        raise NotFoundError(
            f"strategy {strategy.name!r} has no version {number}",
            details={"strategy": strategy.name, "number": number},
        )
    return version


def strategy_by_id(*, strategy_id: int) -> Strategy:
    strategy = strategies_list().filter(pk=strategy_id).first()
    if strategy is None:
        raise NotFoundError(f"no strategy with id {strategy_id}", details={"id": strategy_id})
    return strategy


@dataclass(frozen=True)
class StrategyHistory:
    versions: list[StrategyVersion]
    mode_changes: list[ModeChange]
    approvals: list[ApprovalRequest]


def strategy_history(*, strategy: Strategy, limit: int = 20) -> StrategyHistory:
    """The strategy's versions, mode changes and approvals, newest first (one query each)."""
    return StrategyHistory(
        versions=list(strategy.versions.order_by("-number")[:limit]),
        mode_changes=list(
            ModeChange.objects.filter(strategy=strategy)
            .select_related("changed_by")
            .order_by("-at", "-id")[:limit]
        ),
        approvals=list(
            ApprovalRequest.objects.filter(strategy=strategy)
            .select_related("requested_by", "decided_by", "strategy_version")
            .order_by("-requested_at", "-id")[:limit]
        ),
    )


def approvals_list(
    *, status: str | None = None, strategy_id: int | None = None
) -> QuerySet[ApprovalRequest]:
    queryset = ApprovalRequest.objects.select_related(
        "strategy", "strategy_version", "requested_by", "decided_by"
    ).order_by("-requested_at", "-id")
    if status:
        queryset = queryset.filter(status=status)
    if strategy_id:
        queryset = queryset.filter(strategy_id=strategy_id)
    return queryset


def approval_get(*, approval_id: int) -> ApprovalRequest:
    approval = approvals_list().filter(pk=approval_id).first()
    if approval is None:
        raise NotFoundError(f"no approval request with id {approval_id}")
    return approval


def model_artifacts_list(
    *, status: str | None = None, name: str | None = None
) -> QuerySet[ModelArtifact]:
    queryset = ModelArtifact.objects.select_related("feature_set_version__feature_set").order_by(
        "-created_at", "-id"
    )
    if status:
        queryset = queryset.filter(status=status)
    if name:
        queryset = queryset.filter(name=name)
    return queryset


def model_artifact_get(*, artifact_id: int) -> ModelArtifact:
    artifact = model_artifacts_list().filter(pk=artifact_id).first()
    if artifact is None:
        raise NotFoundError(f"no model with id {artifact_id}", details={"id": artifact_id})
    return artifact


def feature_set_version_current(*, name: str) -> FeatureSetVersion:
    version = (
        FeatureSetVersion.objects.select_related("feature_set")
        .filter(feature_set__name=name, feature_set__current_version=F("pk"))
        .first()
    )
    if version is None:
        raise NotFoundError(
            f"no feature set named {name!r}: load configs/features with load_feature_sets",
            details={"feature_set": name},
        )
    return version

"""``/v1/models``: the research app's router (trained models and their training jobs)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema, Status
from pydantic import model_validator

from common.api import (
    Accepted,
    Data,
    Day,
    Id,
    Out,
    Page,
    PageParams,
    SymbolList,
    accepted,
    paginate,
    responses,
)
from common.auth import Role, acting_user, require_role
from quant.errors import ValidationError
from research import selectors
from research.models import ModelArtifact
from research.training import label_parse, model_artifact_create, model_artifact_submit

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
    """A training request: ``end`` after ``start`` (422 otherwise), distinct symbols (a
    duplicate is a 422 with the request); ``params`` are the model kind's (unknown ones: 422)."""

    name: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.\-]{1,100}$",
        description="letters, digits, '_', '.' or '-'",
    )
    kind: Literal["lightgbm", "sklearn_logistic"] = "lightgbm"
    feature_set: str = Field(min_length=1, max_length=100, description="feature set name")
    symbols: SymbolList = Field(min_length=1, description="distinct symbols")
    timeframe: Literal["1Min", "5Min", "15Min", "1Hour", "1Day"] = "1Day"
    start: Day
    end: Day = Field(description="after start")
    label: str = Field(
        "forward_return:horizon=5",
        max_length=200,
        description="as train_model --label, e.g. forward_return:horizon=5",
    )
    params: dict[str, Any] = Field(default_factory=dict)
    n_splits: int = Field(5, ge=2, le=20)
    embargo_bars: int = Field(5, ge=0, le=10_000)

    @model_validator(mode="after")
    def _range(self) -> ModelTrainIn:
        if self.end <= self.start:
            raise ValidationError(
                f"end {self.end} is not after start {self.start}",
                details={"problems": ["body.payload.end: not after start"]},
            )
        return self


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

    return datetime(day.year, day.month, day.day, tzinfo=UTC)

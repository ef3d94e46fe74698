"""Training service (the Django shell over ``quant.ml``): features, labels, purged K-fold
validation, a final fit, explanations, and a verified model bundle in the storage.

A ``ModelArtifact`` is created in TRAINING with everything the training needs (bad input is
refused before anything is stored), then trained in place by ``model_artifact_train`` (at once,
or by the ``quant.train_model`` Celery task). It ends READY with its file, hash, validation and
importance written in one UPDATE, or FAILED with a readable error and no file.

Samples of all symbols are pooled and put in time order (ties in the order of the symbols);
``embargo_bars`` is counted in bars, i.e. ``embargo_bars * len(symbols)`` pooled samples.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import structlog
import yaml
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db.models import F, Q
from django.utils import timezone
from sklearn.metrics import accuracy_score, log_loss, precision_score, roc_auc_score

from common.jobs import JobKind, enqueue_on_commit, interrupted, job_beating
from marketdata.domain import Timeframe
from marketdata.selectors import bars_frame
from marketdata.services import normalize_symbols
from quant.errors import ApplicationError, ValidationError
from quant.features.labels import LabelDefinition, label_validate, make_labels
from quant.ml.artifacts import ModelBundle, file_hash, load_bundle
from quant.ml.base import LABEL, TradingModel, model_class
from quant.ml.cv import PurgedKFold
from research.feature_store import features_load, version_definition
from research.models import FeatureSetVersion, ModelArtifact, ModelStatus

log = structlog.get_logger(__name__)

METRICS = ("accuracy", "log_loss", "roc_auc", "precision")
MIN_SAMPLES_PER_FOLD = 10


def model_train(
    *,
    name: str,
    kind: str,
    feature_set_version: FeatureSetVersion,
    symbols: Sequence[str],
    timeframe: str,
    start: datetime,
    end: datetime,
    label: LabelDefinition,
    params: dict[str, Any] | None = None,
    n_splits: int = 5,
    embargo_bars: int = 5,
    user: User | None = None,
) -> ModelArtifact:
    """Create and train a model now; READY, or FAILED with ``error`` set."""
    artifact = model_artifact_create(
        name=name,
        kind=kind,
        feature_set_version=feature_set_version,
        symbols=symbols,
        timeframe=timeframe,
        start=start,
        end=end,
        label=label,
        params=params,
        n_splits=n_splits,
        embargo_bars=embargo_bars,
        user=user,
    )
    return model_artifact_train(artifact_id=artifact.pk)


def model_artifact_create(
    *,
    name: str,
    kind: str,
    feature_set_version: FeatureSetVersion,
    symbols: Sequence[str],
    timeframe: str,
    start: datetime,
    end: datetime,
    label: LabelDefinition,
    params: dict[str, Any] | None = None,
    n_splits: int = 5,
    embargo_bars: int = 5,
    user: User | None = None,
) -> ModelArtifact:
    """Validate the request and store it as a TRAINING artifact (nothing stored on error)."""
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,100}", name or ""):
        raise ValidationError(f"name {name!r}: use 1-100 letters, digits, '_', '.' or '-'")
    validated = model_class(kind).validate_params(params or {})
    if start.tzinfo is None or end.tzinfo is None:
        raise ValidationError("start and end need a timezone")
    if end <= start:
        raise ValidationError(f"end {end:%Y-%m-%d} is not after start {start:%Y-%m-%d}")
    if not isinstance(n_splits, int) or n_splits < 2:
        raise ValidationError(f"splits: need at least 2 folds, got {n_splits!r}")
    if not isinstance(embargo_bars, int) or embargo_bars < 0:
        raise ValidationError(f"embargo: need a whole number of bars >= 0, got {embargo_bars!r}")
    return ModelArtifact.objects.create(
        name=name,
        kind=kind,
        status=ModelStatus.TRAINING,
        feature_set_version=feature_set_version,
        symbols=normalize_symbols(symbols),
        timeframe=Timeframe.parse(timeframe).value,
        train_start=start,
        train_end=end,
        label=label.as_dict(),
        params=validated.model_dump(mode="json"),
        validation={"method": "purged_kfold", "n_splits": n_splits, "embargo_bars": embargo_bars},
        created_by=user if getattr(user, "pk", None) else None,
    )


def model_artifact_submit(*, artifact: ModelArtifact) -> ModelArtifact:
    """Queue the training (task ``quant.train_model``) once the surrounding transaction has
    committed; a broker that refuses it fails the artifact with the reason."""
    enqueue_on_commit(
        "quant.train_model",
        artifact.pk,
        queued=lambda task_id: ModelArtifact.objects.filter(pk=artifact.pk).update(
            task_id=task_id, heartbeat_at=timezone.now()
        ),
        failed=lambda message: model_artifact_finish(artifact, ModelStatus.FAILED, error=message),
        what="training",
    )
    return artifact


def model_artifact_train(*, artifact_id: int) -> ModelArtifact:
    """Train a queued TRAINING artifact (no worker has taken it: ``started_at`` empty) to
    READY or FAILED; any other artifact is left as it is, so a message delivered twice trains
    it once. A training whose worker died is put back in the queue by the reaper
    (``TRAINING_JOBS``)."""
    now = timezone.now()
    claimed = ModelArtifact.objects.filter(
        pk=artifact_id, status=ModelStatus.TRAINING, started_at__isnull=True
    ).update(started_at=now, heartbeat_at=now, attempts=F("attempts") + 1)
    artifact = ModelArtifact.objects.select_related("feature_set_version__feature_set").get(
        pk=artifact_id
    )
    if not claimed:
        log.info("model.skip", artifact=artifact.pk, status=artifact.status)
        return artifact
    log.info("model.train", artifact=artifact.pk, name=artifact.name, kind=artifact.kind)
    with job_beating(ModelArtifact, artifact.pk):
        return _train(artifact)


def _train(artifact: ModelArtifact) -> ModelArtifact:
    try:
        model, data, validation = _validated_fit(artifact)
        importance = _importance(model, data)
        content = _bundle(artifact, model, validation).to_bytes()
        digest = file_hash(content)
        path = default_storage.save(_file_name(artifact, digest), ContentFile(content))
    except ApplicationError as error:
        model_artifact_finish(artifact, ModelStatus.FAILED, error=error.message)
        log.warning("model.failed", artifact=artifact.pk, error=error.message)
        return artifact
    except Exception as error:
        if interrupted(error):  # the reaper trains it again (common.jobs)
            log.warning("model.interrupted", artifact=artifact.pk, error=str(error))
            return artifact
        model_artifact_finish(
            artifact, ModelStatus.FAILED, error=f"internal error: {type(error).__name__}: {error}"
        )
        log.exception("model.crashed", artifact=artifact.pk)
        raise
    stored = model_artifact_finish(
        artifact,
        ModelStatus.READY,
        file=path,
        file_hash=digest,
        validation=validation,
        importance=importance,
        feature_names=list(model.feature_names),
        error="",
    )
    if not stored:  # someone else finished it meanwhile: keep theirs, drop our file
        default_storage.delete(path)
    log.info("model.ready", artifact=artifact.pk, file=path, samples=validation["samples"])
    return artifact


TRAINING_JOBS = JobKind(
    name="training",
    model=ModelArtifact,
    task="quant.train_model",
    queued=Q(status=ModelStatus.TRAINING, started_at__isnull=True),
    running=Q(status=ModelStatus.TRAINING, started_at__isnull=False),
    requeue=lambda: {"started_at": None},
    fail=lambda message, now: {"status": ModelStatus.FAILED, "error": message, "finished_at": now},
)


def artifact_bundle_load(*, artifact: ModelArtifact) -> ModelBundle:
    """The artifact's bundle, refused unless its file still hashes to ``file_hash``."""
    if artifact.status != ModelStatus.READY or not artifact.file:
        raise ValidationError(f"model {artifact} is {artifact.status}, not ready")
    return load_bundle(artifact.file, sha256=artifact.file_hash)


def label_parse(text: str) -> LabelDefinition:
    """``forward_return:horizon=5,threshold=0.02`` or ``triple_barrier:horizon=10,upper=0.03,
    lower=-0.02`` as a LabelDefinition; a ValidationError names what is wrong."""
    kind, _, rest = text.strip().partition(":")
    values: dict[str, Any] = {"kind": kind.strip()}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValidationError(f"label {text!r}: {item!r} is not key=value")
        values[key.strip()] = _scalar(value)
    return label_validate(values, source=f"label {text!r}")


def params_parse(items: Sequence[str]) -> dict[str, Any]:
    """``["num_leaves=31", "learning_rate=0.1"]`` as a dict (values read as YAML scalars)."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValidationError(f"param {item!r}: expected key=value, e.g. num_leaves=31")
        params[key.strip()] = _scalar(value)
    return params


# --- internals --------------------------------------------------------------------------


def _scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text.strip()) if text.strip() else ""
    except yaml.YAMLError:
        return text.strip()


def _samples(artifact: ModelArtifact) -> pd.DataFrame:
    """Features, ``label`` and ``t1`` of every symbol; warmup rows and rows without a label
    dropped; in time order."""
    version = artifact.feature_set_version
    columns = version_definition(version=version).columns()
    label = label_validate(artifact.label, source=f"model {artifact.pk} label")
    start, end = artifact.train_start, artifact.train_end
    assert start is not None and end is not None
    frames = []
    for symbol in artifact.symbols:
        features = features_load(
            version=version, symbol=symbol, timeframe=artifact.timeframe, start=start, end=end
        )
        bars = bars_frame(
            symbol=symbol, timeframe=Timeframe(artifact.timeframe), start=start, end=end
        )
        labels = make_labels(bars, label)[[LABEL, "t1"]]
        joined = features[columns].join(labels, how="inner").dropna()
        frames.append(joined)
    data = pd.concat(frames).sort_index(kind="stable")
    needed = MIN_SAMPLES_PER_FOLD * int(artifact.validation["n_splits"])
    if len(data) < needed:
        raise ValidationError(
            f"only {len(data)} samples with complete features and a label between "
            f"{start:%Y-%m-%d} and {end:%Y-%m-%d}; need at least {needed}: widen the range"
        )
    return data


def _validated_fit(artifact: ModelArtifact) -> tuple[TradingModel, pd.DataFrame, dict[str, Any]]:
    data = _samples(artifact)
    cls = model_class(artifact.kind)
    train_data = data.drop(columns=["t1"])
    config = artifact.validation
    cv = PurgedKFold(
        int(config["n_splits"]),
        embargo=int(config["embargo_bars"]) * len(artifact.symbols),
        t1=data["t1"],
    )
    folds = []
    for k, (train, test) in enumerate(cv.split(train_data), start=1):
        try:
            model = cls().fit(train_data.iloc[train], artifact.params)
        except ValidationError as error:
            raise ValidationError(f"fold {k}: {error.message}") from None
        folds.append(_fold_record(k, data, train, test, model.predict(train_data.iloc[test])))
    final = cls().fit(train_data, artifact.params)
    t0 = data.index
    validation = {
        **config,
        "embargo_samples": cv.embargo,
        "samples": len(data),
        "positive_share": float((data[LABEL] > 0).mean()),
        "first_sample": t0[0].isoformat(),
        "last_sample": t0[-1].isoformat(),
        "last_label_end": pd.Timestamp(data["t1"].max()).isoformat(),
        "folds": folds,
        "metrics": _summary(folds),
    }
    return final, train_data, validation


def _fold_record(
    k: int, data: pd.DataFrame, train: np.ndarray, test: np.ndarray, predicted: Any
) -> dict[str, Any]:
    y = (data[LABEL].to_numpy()[test] > 0).astype(int)
    probability = predicted.probability
    both = len(np.unique(y)) == 2
    metrics: dict[str, float | None] = {
        "accuracy": float(accuracy_score(y, predicted.label)),
        "log_loss": float(log_loss(y, np.clip(probability, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "roc_auc": float(roc_auc_score(y, probability)) if both else None,
        "precision": float(precision_score(y, predicted.label, zero_division=0)),
    }
    t0, t1 = data.index, pd.DatetimeIndex(data["t1"])
    return {
        "fold": k,
        "train_samples": len(train),
        "test_samples": len(test),
        "test_start": t0[test[0]].isoformat(),
        "test_end": t0[test[-1]].isoformat(),
        "test_label_end": t1[test].max().isoformat(),
        "train_blocks": [
            {
                "start": t0[block[0]].isoformat(),
                "end": t0[block[-1]].isoformat(),
                "label_end": t1[block].max().isoformat(),
                "samples": len(block),
            }
            for block in _runs(train)
        ],
        "metrics": metrics,
    }


def _runs(positions: np.ndarray) -> list[np.ndarray]:
    """Contiguous runs of sorted positions (a purged fold trains on one or two)."""
    breaks = np.flatnonzero(np.diff(positions) != 1) + 1
    return [run for run in np.split(positions, breaks) if len(run)]


def _summary(folds: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    summary: dict[str, dict[str, float | None]] = {}
    for name in METRICS:
        values = [f["metrics"][name] for f in folds if f["metrics"][name] is not None]
        summary[name] = {
            "mean": float(np.mean(values)) if values else None,
            "std": float(np.std(values)) if values else None,
        }
    return summary


def _importance(model: TradingModel, data: pd.DataFrame) -> dict[str, float]:
    """Mean |contribution| (log-odds) of each feature over the training rows."""
    explained = model.explain(data.drop(columns=[LABEL]))
    return {k: v for k, v in explained.global_importance.items() if math.isfinite(v)}


def _bundle(
    artifact: ModelArtifact, model: TradingModel, validation: dict[str, Any]
) -> ModelBundle:
    version = artifact.feature_set_version
    definition = version_definition(version=version)
    if definition.version != version.version:
        raise ValidationError(
            f"feature set version {version} was stored by older feature code (it computes "
            f"{definition.version[:12]}… now): load the feature set again and train on that"
        )
    assert artifact.train_start is not None and artifact.train_end is not None
    return ModelBundle.from_model(
        model,
        feature_set=definition.as_dict(),
        feature_set_version=version.version,
        label=dict(artifact.label),
        symbols=tuple(artifact.symbols),
        timeframe=artifact.timeframe,
        train_start=artifact.train_start.isoformat(),
        train_end=artifact.train_end.isoformat(),
        extra={
            "artifact_id": artifact.pk,
            "name": artifact.name,
            "feature_set": version.feature_set.name,
            "metrics": validation["metrics"],
        },
    )


def _file_name(artifact: ModelArtifact, digest: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", artifact.name).strip("-.") or "model"
    return f"models/{slug}/{artifact.pk}-{digest[:12]}.json"


def model_artifact_finish(artifact: ModelArtifact, status: str, **fields: Any) -> bool:
    """Compare-and-swap TRAINING -> ``status`` with every result field in one UPDATE."""
    changed = ModelArtifact.objects.filter(pk=artifact.pk, status=ModelStatus.TRAINING).update(
        status=status, finished_at=timezone.now(), **fields
    )
    artifact.refresh_from_db()
    return changed == 1


def validation_table(artifact: ModelArtifact) -> str:
    """Per-fold metrics, their mean and std, the top features and where the file went."""
    validation = artifact.validation
    names = METRICS
    header = ["fold", "train", "test", "test period", *names]
    rows = [header]
    for fold in validation["folds"]:
        period = f"{fold['test_start'][:10]}..{fold['test_end'][:10]}"
        rows.append(
            [
                str(fold["fold"]),
                str(fold["train_samples"]),
                str(fold["test_samples"]),
                period,
                *(_num(fold["metrics"][n]) for n in names),
            ]
        )
    for stat in ("mean", "std"):
        rows.append([stat, "", "", "", *(_num(validation["metrics"][n][stat]) for n in names)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    top = sorted(artifact.importance.items(), key=lambda kv: -kv[1])[:5]
    lines += [
        "",
        f"model {artifact.name} #{artifact.pk} ({artifact.kind}) ready: "
        f"{validation['samples']} samples, purged {validation['n_splits']}-fold, "
        f"embargo {validation['embargo_bars']} bars",
        "top features (mean |contribution|, log-odds): "
        + ", ".join(f"{name} {value:.4f}" for name, value in top),
        f"file {artifact.file}  sha256 {artifact.file_hash}",
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"

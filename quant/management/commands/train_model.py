"""``manage.py train_model``: train a model on stored bars and print its validation table.

    manage.py train_model --name spy_lgbm --kind lightgbm --feature-set technical_basic \\
        --symbols SPY,QQQ --start 2018-01-01 --end 2023-12-31 \\
        --label forward_return:horizon=5,threshold=0.02 --param num_leaves=7 --splits 5 --embargo 5

``--feature-set`` is a stored feature set's name (``NAME`` or ``NAME@VERSION-PREFIX``) or a YAML
file (stored as a feature set version first). ``--async`` queues the training for the Celery
worker and returns at once.
"""

from __future__ import annotations

from argparse import ArgumentParser
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from quant.core.errors import ApplicationError
from quant.feature_store import feature_set_ensure, feature_set_version_get
from quant.features.definitions import feature_set_load
from quant.ml import training
from quant.ml.base import MODEL_KINDS
from quant.models import FeatureSetVersion, ModelArtifact, ModelStatus


class Command(BaseCommand):
    help = "Train a model (purged K-fold validation, then a final fit) and store its artifact."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--name", required=True, help="artifact name, e.g. spy_lgbm")
        parser.add_argument("--kind", required=True, choices=MODEL_KINDS)
        parser.add_argument(
            "--feature-set", required=True, help="stored feature set NAME[@VERSION] or a YAML file"
        )
        parser.add_argument("--symbols", required=True, help="comma-separated, e.g. SPY,QQQ")
        parser.add_argument("--timeframe", default="1Day")
        parser.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
        parser.add_argument("--end", required=True, help="last day, YYYY-MM-DD (inclusive)")
        parser.add_argument(
            "--label",
            required=True,
            help="KIND:key=value,..., e.g. forward_return:horizon=5,threshold=0.02 or "
            "triple_barrier:horizon=10,upper=0.03,lower=-0.02",
        )
        parser.add_argument(
            "--param", action="append", default=[], help="model parameter key=value (repeatable)"
        )
        parser.add_argument("--splits", type=int, default=5, help="purged K-fold splits")
        parser.add_argument("--embargo", type=int, default=5, help="embargo in bars")
        parser.add_argument(
            "--async", dest="queue", action="store_true", help="queue it for the Celery worker"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self._handle(options)
        except ApplicationError as error:
            raise CommandError(error.message) from None

    def _handle(self, options: dict[str, Any]) -> None:
        label = training.label_parse(options["label"])
        params = training.params_parse(options["param"])
        request: dict[str, Any] = {
            "name": options["name"],
            "kind": options["kind"],
            "symbols": [s for s in options["symbols"].split(",") if s.strip()],
            "timeframe": options["timeframe"],
            "start": _day(options["start"], "--start"),
            "end": _day(options["end"], "--end", last=True),
            "label": label,
            "params": params,
            "n_splits": options["splits"],
            "embargo_bars": options["embargo"],
        }
        if options["queue"]:
            with transaction.atomic():
                version = _feature_set_version(options["feature_set"])
                artifact = training.model_artifact_create(feature_set_version=version, **request)
                training.model_artifact_submit(artifact=artifact)
            self.stdout.write(f"Queued training of model {artifact.name} #{artifact.pk}")
            return
        version = _feature_set_version(options["feature_set"])
        artifact = training.model_train(feature_set_version=version, **request)
        if artifact.status != ModelStatus.READY:
            raise CommandError(f"model {artifact.name} #{artifact.pk} failed: {artifact.error}")
        self.stdout.write(validation_table(artifact))


def validation_table(artifact: ModelArtifact) -> str:
    """Per-fold metrics, their mean and std, the top features and where the file went."""
    validation = artifact.validation
    names = training.METRICS
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


def _feature_set_version(value: str) -> FeatureSetVersion:
    path = Path(value)
    if path.suffix.lower() in (".yaml", ".yml") or path.is_file():
        return feature_set_ensure(definition=feature_set_load(path))
    name, _, version = value.partition("@")
    return feature_set_version_get(name=name, version=version or None)


def _day(value: str, flag: str, *, last: bool = False) -> datetime:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{flag}: {value!r} is not a date (YYYY-MM-DD)") from None
    moment = datetime.combine(day, time(), tzinfo=UTC)
    return moment + timedelta(days=1, microseconds=-1) if last else moment

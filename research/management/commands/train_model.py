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
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from common.options import day_option
from quant.errors import ApplicationError
from quant.features.definitions import feature_set_load
from quant.ml.base import MODEL_KINDS
from research import training
from research.feature_store import feature_set_ensure, feature_set_version_get
from research.models import FeatureSetVersion, ModelStatus


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
            "start": day_option(options["start"], "--start", required=True),
            "end": day_option(options["end"], "--end", last=True, required=True),
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
        self.stdout.write(training.validation_table(artifact))


def _feature_set_version(value: str) -> FeatureSetVersion:
    path = Path(value)
    if path.suffix.lower() in (".yaml", ".yml") or path.is_file():
        return feature_set_ensure(definition=feature_set_load(path))
    name, _, version = value.partition("@")
    return feature_set_version_get(name=name, version=version or None)

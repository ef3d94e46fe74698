"""Feature sets from YAML: each distinct definition is a version keyed by its hash.

Loading a directory is all or nothing, like ``load_strategies``: every file is read and
validated first; one problem anywhere (reported with its file and field) writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import structlog
from django.conf import settings
from django.db import transaction

from quant.configfiles import ConfigFile, config_files_validate
from quant.errors import NotFoundError
from quant.features.definitions import FeatureSetDefinition, feature_set_load
from research.models import FeatureSet, FeatureSetVersion

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class LoadedFeatureSet:
    """What loading one file did: ``created`` is True when a new version was stored."""

    path: Path
    name: str
    version: str
    created: bool

    @property
    def summary(self) -> str:
        state = "new version" if self.created else "unchanged"
        return f"{self.name}: {state} {self.version[:12]}"


@dataclass(frozen=True)
class FeatureSetLoadReport:
    results: tuple[LoadedFeatureSet, ...]

    @property
    def created(self) -> int:
        return sum(r.created for r in self.results)


def feature_set_ensure(*, definition: FeatureSetDefinition) -> FeatureSetVersion:
    """The stored version of ``definition`` (created if new), made its set's current version."""
    return _version_ensure(definition)[0]


def _version_ensure(definition: FeatureSetDefinition) -> tuple[FeatureSetVersion, bool]:
    with transaction.atomic():
        FeatureSet.objects.get_or_create(
            name=definition.name, defaults={"description": definition.description}
        )
        # The row lock serializes concurrent loads of one set (one version row per hash).
        feature_set = FeatureSet.objects.select_for_update().get(name=definition.name)
        version, created = FeatureSetVersion.objects.get_or_create(
            feature_set=feature_set,
            version=definition.version,
            defaults={"definition": definition.as_dict()},
        )
        changed = []
        if feature_set.current_version_id != version.pk:
            feature_set.current_version = version
            changed.append("current_version")
        if feature_set.description != definition.description:
            feature_set.description = definition.description
            changed.append("description")
        if changed:
            feature_set.save(update_fields=changed)
    if created:
        log.info(
            "feature_set.version_created", feature_set=definition.name, version=version.version
        )
    return version, created


def feature_set_definitions_validate(*, path: Path) -> list[ConfigFile[FeatureSetDefinition]]:
    """Read and validate every definition under ``path`` (a directory or one file); no writes.

    Raises one ValidationError listing every problem of every file, each line naming the
    file (and the field), including two files that declare the same feature set name.
    """
    return config_files_validate(
        path, load=feature_set_load, name_of=lambda d: d.name, kind="feature set"
    )


def shipped_feature_sets() -> Path:
    """``configs/features/``: the feature sets that come with the platform."""
    return Path(settings.BASE_DIR) / "configs" / "features"


def feature_sets_load_directory(*, path: Path) -> FeatureSetLoadReport:
    """Store every definition under ``path``: all validated first, then written in one transaction."""
    items = feature_set_definitions_validate(path=path)
    with transaction.atomic():
        results = []
        for item in items:
            version, created = _version_ensure(item.value)
            results.append(
                LoadedFeatureSet(
                    path=item.path,
                    name=item.value.name,
                    version=version.version,
                    created=created,
                )
            )
    log.info(
        "feature_sets.loaded",
        path=str(path),
        files=len(results),
        versions_created=sum(r.created for r in results),
    )
    return FeatureSetLoadReport(results=tuple(results))


def feature_set_version_get(*, name: str, version: str | None = None) -> FeatureSetVersion:
    """Version ``version`` (a hash or a unique prefix of it) of feature set ``name``, or its
    current version when ``version`` is None."""
    feature_set = FeatureSet.objects.filter(name=name).first()
    if feature_set is None:
        raise NotFoundError(f"no feature set named {name!r}: run manage.py load_feature_sets")
    if version is None:
        if feature_set.current_version_id is None:
            raise NotFoundError(f"feature set {name!r} has no version yet")
        return FeatureSetVersion.objects.select_related("feature_set").get(
            pk=feature_set.current_version_id
        )
    matches = list(
        FeatureSetVersion.objects.select_related("feature_set").filter(
            feature_set=feature_set, version__startswith=version.lower()
        )[:2]
    )
    if len(matches) != 1:
        problem = "no version" if not matches else "more than one version"
        raise NotFoundError(f"feature set {name!r} has {problem} starting with {version!r}")
    return matches[0]

"""Writes of the research app: strategies and their config versions, synced from YAML files.

Loading a directory is all or nothing: every file is read and validated first, and one
problem anywhere (each reported with its file and field) means nothing is written at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from monitoring.services import alert_raise_safely
from quant.configfiles import ConfigFile, config_files_validate
from quant.errors import ConflictError, GateClosedError, ValidationError
from quant.strategies.config import StrategyConfig, config_load
from research.models import (
    ApprovalKind,
    ApprovalRequest,
    ApprovalStatus,
    ModeChange,
    Strategy,
    StrategyMode,
    StrategyVersion,
    VersionSource,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class LoadedStrategy:
    """What loading one file did: ``created`` is True when a new version was stored.

    ``kept`` names the source of a newer edit that was kept because the file did not change
    since it was last loaded; ``conflict`` says why a changed file was not loaded (the
    strategy was edited since, so the file would overwrite that edit)."""

    path: Path
    name: str
    version: int
    created: bool
    kept: str = ""
    conflict: str = ""

    @property
    def summary(self) -> str:
        if self.conflict:
            return f"{self.name}: NOT LOADED: {self.conflict}"
        if self.kept:
            return (
                f"{self.name}: file unchanged since it was last loaded; version {self.version} "
                f"(edited through the {self.kept}) kept"
            )
        if not self.created:
            return f"{self.name}: unchanged (version {self.version})"
        what = "new" if self.version == 1 else "changed"
        return f"{self.name}: version {self.version} ({what})"


@dataclass(frozen=True)
class LoadReport:
    results: tuple[LoadedStrategy, ...]

    @property
    def created(self) -> int:
        return sum(r.created for r in self.results)

    @property
    def conflicts(self) -> tuple[LoadedStrategy, ...]:
        return tuple(r for r in self.results if r.conflict)


def strategy_version_ensure(
    *, config: StrategyConfig, source: str, source_path: str = ""
) -> tuple[StrategyVersion, bool]:
    """The strategy's current version for ``config``, storing a new one when it differs.

    A new version is stored when the config's content hash (or the class's interface
    version) differs from the *current* version; a config equal to an older version gets a
    new number (history is linear). Returns ``(version, created)``.
    """
    if source not in VersionSource.values:
        raise ValidationError(
            f"unknown version source {source!r}: use one of {', '.join(VersionSource.values)}"
        )
    source = VersionSource(source).value
    content_hash = config.content_hash()
    interface_version = config.strategy_class().interface_version
    with transaction.atomic():
        Strategy.objects.get_or_create(name=config.name, defaults=_denormalized(config))
        # The row lock serializes concurrent loads of one strategy, so numbers never collide.
        strategy = (
            Strategy.objects.select_for_update(of=("self",))
            .select_related("current_version")
            .get(name=config.name)
        )
        current = strategy.current_version
        if (
            current is not None
            and current.content_hash == content_hash
            and current.interface_version == interface_version
        ):
            if source_path and strategy.source_path != source_path:
                strategy.source_path = source_path
                strategy.save(update_fields=["source_path", "updated_at"])
            return current, False
        last = strategy.versions.order_by("-number").values_list("number", flat=True).first()
        version = StrategyVersion.objects.create(
            strategy=strategy,
            number=(last or 0) + 1,
            config=config.as_dict(),
            content_hash=content_hash,
            interface_version=interface_version,
            source=source,
        )
        for field, value in _denormalized(config).items():
            setattr(strategy, field, value)
        strategy.current_version = version
        update_fields = [*_denormalized(config), "current_version", "updated_at"]
        if source_path:
            strategy.source_path = source_path
            update_fields.append("source_path")
        strategy.save(update_fields=update_fields)
        strategy_version_stored(strategy=strategy, version=version, previous=current)
    log.info(
        "strategy.version_created",
        strategy=strategy.name,
        version=version.number,
        content_hash=content_hash[:12],
        source=source,
    )
    return version, True


def _denormalized(config: StrategyConfig) -> dict[str, object]:
    return {
        "class_name": config.class_name,
        "description": config.description,
        "symbols": list(config.symbols),
        "timeframe": config.timeframe,
    }


def strategy_configs_validate(*, path: Path) -> list[ConfigFile[StrategyConfig]]:
    """Read and validate every config under ``path`` (a directory or one file); no writes.

    Raises one ValidationError listing every problem of every file, each line naming the
    file (and the field), including two files that claim the same strategy name.
    """
    return config_files_validate(
        path, load=config_load, name_of=lambda config: config.name, kind="strategy config"
    )


def strategies_load_directory(*, path: Path, force: bool = False) -> LoadReport:
    """Sync every config under ``path`` (a directory or one file) into the database.

    All files are validated before anything is written, and all versions are written in one
    transaction: either every valid file is loaded or none is. A file makes a new version only
    when it changed since it was last loaded, so an edit made through the API or the dashboard
    survives every restart; a file that changed *and* a strategy edited since are a conflict,
    reported and not loaded (``force``: the file wins, as a new version).
    """
    configs = strategy_configs_validate(path=path)
    with transaction.atomic():
        results = tuple(
            _load_one(item.path, item.value, source_path=_display_path(item.path), force=force)
            for item in configs
        )
    log.info(
        "strategies.loaded",
        path=str(path),
        files=len(results),
        versions_created=sum(r.created for r in results),
        conflicts=[r.name for r in results if r.conflict],
    )
    return LoadReport(results=results)


def strategy_file_sync(*, path: Path, config: StrategyConfig) -> tuple[StrategyVersion, bool]:
    """The version a YAML file's config stands for, by the rule of ``strategies_load_directory``
    (``run_backtest --save`` and ``walk_forward --save`` store their file's config so): a new
    version only when the file changed since it was last loaded, and never over a newer edit:
    a ``ConflictError`` says so (``load_strategies --force`` lets the file win). Returns
    ``(version, created)``."""
    with transaction.atomic():
        loaded = _load_one(path, config, source_path=_display_path(path), force=False)
        if loaded.conflict or loaded.kept:
            raise ConflictError(loaded.summary)
        version = StrategyVersion.objects.select_related("strategy").get(
            strategy__name=config.name, number=loaded.version
        )
    return version, loaded.created


def _load_one(
    path: Path, config: StrategyConfig, *, source_path: str, force: bool
) -> LoadedStrategy:
    file_hash = config.content_hash()
    strategy = (
        Strategy.objects.select_for_update(of=("self",))
        .select_related("current_version")
        .filter(name=config.name)
        .first()
    )
    current = strategy.current_version if strategy is not None else None
    if strategy is not None and current is not None and current.content_hash != file_hash:
        edited = _edited_since_load(strategy, current)
        if edited and file_hash == strategy.source_hash and not force:
            return LoadedStrategy(path, config.name, current.number, False, kept=current.source)
        if edited and not force:
            conflict = (
                f"{source_path} changed since it was last loaded, and version {current.number} "
                f"was stored through the {current.source} since: the file would overwrite that "
                "edit (load it with --force to store the file as a new version)"
            )
            return LoadedStrategy(path, config.name, current.number, False, conflict=conflict)
    version, created = strategy_version_ensure(
        config=config, source=VersionSource.FILE, source_path=source_path
    )
    Strategy.objects.filter(name=config.name).update(source_hash=file_hash)
    return LoadedStrategy(path=path, name=config.name, version=version.number, created=created)


def _edited_since_load(strategy: Strategy, current: StrategyVersion) -> bool:
    """The current version is an edit the file never held (from the API or the admin, or a
    file version other than the one last loaded)."""
    if strategy.source_hash:
        return current.content_hash != strategy.source_hash
    return current.source != VersionSource.FILE  # loaded before file hashes were kept


def _display_path(path: Path) -> str:
    """The file's path relative to the project when it lies inside it, else absolute."""
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(Path(settings.BASE_DIR).resolve()))
    except ValueError:
        return str(resolved)


def strategy_config_update(*, strategy: Strategy, config: StrategyConfig) -> StrategyVersion:
    """A config edited through the API or dashboard, already validated like a YAML file: a new
    version when it differs from the current one. The name cannot change here."""
    if config.name != strategy.name:
        problem = f"name: {config.name!r} differs from the strategy's name {strategy.name!r}"
        raise ValidationError(problem, details={"problems": [problem]})
    version, _ = strategy_version_ensure(config=config, source=VersionSource.API)
    return version


def strategy_active_set(*, strategy: Strategy, is_active: bool, user: Any = None) -> Strategy:
    """Switch a strategy on or off (an inactive strategy is not ticked by the trading loop)."""
    with transaction.atomic():
        locked = Strategy.objects.select_for_update().get(pk=strategy.pk)
        if locked.is_active != is_active:
            locked.is_active = is_active
            locked.save(update_fields=["is_active", "updated_at"])
            log.info(
                "strategy.active_set",
                strategy=locked.name,
                is_active=is_active,
                user=getattr(user, "username", None),
            )
    return locked


# --- modes, versions and reviews ---------------------------------------------------------


def strategy_mode_set(
    strategy: Strategy,
    to_mode: StrategyMode,
    *,
    user: Any,
    reason: str,
    at: Any,
    approval: ApprovalRequest | None = None,
) -> None:
    """Change the (locked) strategy's mode and record it with its version: every mode change
    (a promotion the approvals service applies, a demotion, a new version) goes through here."""
    from_mode = strategy.mode
    strategy.mode = to_mode
    strategy.save(update_fields=["mode", "updated_at"])
    ModeChange.objects.create(
        strategy=strategy,
        from_mode=from_mode,
        to_mode=to_mode,
        strategy_version_id=strategy.current_version_id,
        approval=approval,
        changed_by=user,
        reason=reason,
        at=at,
    )
    log.warning(
        "strategy.mode_changed",
        strategy=strategy.name,
        from_mode=from_mode,
        to_mode=to_mode.value,
        approval_id=approval.pk if approval else None,
    )


def strategy_version_stored(
    *, strategy: Strategy, version: StrategyVersion, previous: StrategyVersion | None
) -> None:
    """A new version became current (inside the caller's transaction, strategy row locked):
    older pending requests are withdrawn, and a strategy outside research returns there."""
    now = timezone.now()
    note = f"withdrawn: version {version.number} was stored ({version.source})"
    ApprovalRequest.objects.filter(strategy=strategy, status=ApprovalStatus.PENDING).exclude(
        strategy_version=version
    ).update(status=ApprovalStatus.WITHDRAWN, decided_at=now, decision_note=note)
    if strategy.mode == StrategyMode.RESEARCH:
        return
    was = previous.number if previous is not None else "?"
    strategy_mode_set(
        strategy,
        StrategyMode.RESEARCH,
        user=None,
        reason=(
            f"version {version.number} stored from {version.source}: it must pass its review "
            f"and the promotion gates before it trades (version {was} was approved)"
        ),
        at=now,
    )
    transaction.on_commit(lambda: _alert_version_demotion(strategy.name, version.number, was))


def _alert_version_demotion(name: str, number: int, was: object) -> None:
    alert_raise_safely(
        severity="warning",
        source="research.approvals",
        message=(
            f"Strategy {name} returned to research mode: its config changed to version "
            f"{number} (version {was} was the approved one); review and promote it again"
        ),
        key=f"strategy.version_demotion.{name}",
    )


def strategy_require_reviewed(strategy: Strategy) -> None:
    """Gate 1 for the current version, read from the database (a caller's instance may
    predate the approval)."""
    fresh = Strategy.objects.filter(pk=strategy.pk).only(
        "name", "current_version", "reviewed_version"
    )
    row = fresh.first()
    if row is None or not row.is_reviewed:
        raise GateClosedError(
            f"strategy {strategy.name} has not been reviewed in its current version: request a "
            "strategy review and have another user approve it before running backtests"
        )


def strategy_review_builtin(
    *, strategy: Strategy, note: str, version: StrategyVersion | None = None
) -> ApprovalRequest | None:
    """Record the review of a version shipped with the platform (``seed_demo``, tests and
    benchmarks): ``version`` (the one loaded from the shipped file, never a later edit; by
    default the current one) when it is still current and unreviewed.

    Written as an approved request with neither requester nor decider, so the history says
    plainly that no user of this installation reviewed it."""
    with transaction.atomic():
        locked = (
            Strategy.objects.select_for_update(of=("self",))
            .select_related("current_version")
            .get(pk=strategy.pk)
        )
        version = version or locked.current_version
        if version is None or locked.current_version_id != version.pk or locked.is_reviewed:
            return None
        now = timezone.now()
        approval = ApprovalRequest.objects.create(
            kind=ApprovalKind.STRATEGY_REVIEW,
            strategy=locked,
            strategy_version=version,
            status=ApprovalStatus.APPROVED,
            evidence={"builtin": True, "strategy_version": version.number},
            note=note,
            requested_at=now,
            decided_at=now,
            decision_note=note,
        )
        Strategy.objects.filter(pk=locked.pk).update(reviewed_version=version, reviewed_at=now)
        strategy.reviewed_version, strategy.reviewed_at = version, now
    return approval

"""Admin of the research app: strategy versions (history: looked at, never added, edited or
deleted), feature sets with their versions and cached features, and trained models.

Strategies themselves, the approval requests and the mode-change audit are administered with
the gates they pass (``risk.admin_gates``)."""

from __future__ import annotations

import yaml
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from common.admin import ReadOnlyAdmin, ReadOnlyInline
from quant.errors import ValidationError
from quant.strategies.config import config_dump
from research.feature_store import feature_cache_entries_delete, version_definition
from research.models import (
    FeatureCacheEntry,
    FeatureSet,
    FeatureSetVersion,
    ModelArtifact,
    ModelStatus,
    StrategyVersion,
)
from research.training import validation_table


def config_yaml(version: StrategyVersion) -> str:
    """The version's config as YAML in the canonical key order (the database keeps none)."""
    try:
        return config_dump(version.as_config())
    except ValidationError:
        # The class or its params changed since this version was stored: show it as stored.
        return yaml.safe_dump(version.config, sort_keys=True)


@admin.register(StrategyVersion)
class StrategyVersionAdmin(ReadOnlyAdmin):
    list_display = (
        "strategy",
        "number",
        "short_hash",
        "interface_version",
        "source",
        "created_at",
    )
    list_filter = ("source", "strategy")
    list_select_related = ("strategy",)
    search_fields = ("strategy__name", "content_hash")
    fields = (
        "strategy",
        "number",
        "config_yaml",
        "content_hash",
        "interface_version",
        "source",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="Hash")
    def short_hash(self, version: StrategyVersion) -> str:
        return version.content_hash[:12]

    @admin.display(description="Config")
    def config_yaml(self, version: StrategyVersion) -> SafeString:
        return format_html("<pre>{}</pre>", config_yaml(version))


# --- feature sets, their versions and cached features (issue 5) -------------------------
# Definitions come from YAML via ``load_feature_sets``; cache entries are written by
# ``research.feature_store``. All read-only here; cached files are deleted by an action.


def _definition_yaml(version: FeatureSetVersion) -> str:
    """The definition as YAML in its canonical key order (the database keeps none)."""
    try:
        return yaml.safe_dump(version_definition(version=version).as_dict(), sort_keys=False)
    except ValidationError:  # the definition schema changed since: show it as stored
        return yaml.safe_dump(version.definition, sort_keys=True)


class FeatureSetVersionInline(ReadOnlyInline):
    model = FeatureSetVersion
    fields = ("version_link", "created_at")
    readonly_fields = fields
    ordering = ("-created_at",)

    @admin.display(description="Version")
    def version_link(self, version: FeatureSetVersion) -> SafeString:
        url = reverse("admin:quant_featuresetversion_change", args=[version.pk])
        return format_html('<a href="{}">{}</a>', url, version.version[:16])


@admin.register(FeatureSet)
class FeatureSetAdmin(ReadOnlyAdmin):
    list_display = ("name", "description", "current", "created_at")
    list_select_related = ("current_version",)
    search_fields = ("name", "description")
    fields = ("name", "description", "current_version", "created_at")
    readonly_fields = fields
    inlines = [FeatureSetVersionInline]

    @admin.display(description="Current version", ordering="current_version__version")
    def current(self, feature_set: FeatureSet) -> str:
        version = feature_set.current_version
        return version.version[:16] if version else "-"


@admin.register(FeatureSetVersion)
class FeatureSetVersionAdmin(ReadOnlyAdmin):
    list_display = ("feature_set", "short_version", "created_at")
    list_filter = ("feature_set",)
    list_select_related = ("feature_set",)
    search_fields = ("feature_set__name", "version")
    fields = ("feature_set", "version", "definition_pretty", "created_at")
    readonly_fields = fields

    @admin.display(description="Version")
    def short_version(self, version: FeatureSetVersion) -> str:
        return version.version[:16]

    @admin.display(description="Definition")
    def definition_pretty(self, version: FeatureSetVersion) -> SafeString:
        return format_html("<pre>{}</pre>", _definition_yaml(version))


@admin.register(FeatureCacheEntry)
class FeatureCacheEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "feature_set_version",
        "symbol",
        "timeframe",
        "start",
        "end",
        "rows",
        "created_at",
        "last_used_at",
    )
    list_filter = ("timeframe", "feature_set_version__feature_set", "symbol")
    list_select_related = ("feature_set_version__feature_set",)
    search_fields = ("symbol", "path", "feature_set_version__feature_set__name")
    fields = (
        "feature_set_version",
        "symbol",
        "timeframe",
        "start",
        "end",
        "rows",
        "columns",
        "bars_fingerprint",
        "path",
        "created_at",
        "last_used_at",
    )
    readonly_fields = fields
    actions = ["delete_cached_files"]

    def has_purge_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("quant.delete_featurecacheentry")

    @admin.action(description="Delete cached files (recomputed on next use)", permissions=["purge"])
    def delete_cached_files(
        self, request: HttpRequest, queryset: QuerySet[FeatureCacheEntry]
    ) -> None:
        deleted = feature_cache_entries_delete(entries=queryset)
        self.message_user(request, f"{deleted} cache entr{'y' if deleted == 1 else 'ies'} deleted")


@admin.register(ModelArtifact)
class ModelArtifactAdmin(ReadOnlyAdmin):
    """Trained models: what each learned from, how it validated (purged K-fold), its file.

    Models are trained by ``manage.py train_model`` or the ``quant.train_model`` task; an
    ``ml_signal`` strategy names the file (and may pin its hash)."""

    list_display = (
        "name",
        "kind",
        "status",
        "feature_set_version",
        "symbols_list",
        "timeframe",
        "train_start",
        "train_end",
        "mean_roc_auc",
        "short_hash",
        "created_at",
    )
    list_filter = ("status", "kind", "timeframe", "feature_set_version__feature_set")
    list_select_related = ("feature_set_version__feature_set",)
    search_fields = ("name", "file_hash", "file")
    fields = (
        "name",
        "kind",
        "status",
        "error",
        "feature_set_version",
        "symbols",
        "timeframe",
        "train_start",
        "train_end",
        "label",
        "params",
        "validation_report",
        "importance_table",
        "file",
        "file_hash",
        "task_id",
        "created_by",
        "created_at",
        "finished_at",
    )
    readonly_fields = fields

    @admin.display(description="Symbols")
    def symbols_list(self, artifact: ModelArtifact) -> str:
        return ", ".join(artifact.symbols)

    @admin.display(description="ROC AUC (mean)")
    def mean_roc_auc(self, artifact: ModelArtifact) -> str:
        value = (artifact.validation.get("metrics") or {}).get("roc_auc", {}).get("mean")
        return "-" if value is None else f"{value:.4f}"

    @admin.display(description="sha256")
    def short_hash(self, artifact: ModelArtifact) -> str:
        return artifact.file_hash[:12] or "-"

    @admin.display(description="Validation")
    def validation_report(self, artifact: ModelArtifact) -> SafeString | str:
        if artifact.status != ModelStatus.READY:
            return "-"
        return format_html("<pre>{}</pre>", validation_table(artifact))

    @admin.display(description="Global importance (mean |contribution|, log-odds)")
    def importance_table(self, artifact: ModelArtifact) -> SafeString | str:
        ranked = sorted(artifact.importance.items(), key=lambda kv: -kv[1])
        if not ranked:
            return "-"
        width = max(len(name) for name, _ in ranked)
        lines = "\n".join(f"{name.ljust(width)}  {value:.4f}" for name, value in ranked)
        return format_html("<pre>{}</pre>", lines)

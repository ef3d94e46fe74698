"""Admin: strategies (configs come from YAML via ``load_strategies``), their version history,
and the approval gates (review, promotion to paper and to live) with the mode-change audit.

Config fields are copies of the current version and are read-only here; versions are history
and can be looked at, never added, edited or deleted. A strategy's mode changes only through
``quant.approvals``: the strategy actions open requests or demote, and another user approves or
rejects a request from the approval list. Only ``is_active`` is edited directly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

import yaml
from django import forms
from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from quant.admin_base import ReadOnlyAdmin, ReadOnlyInline
from quant.approvals import (
    approval_decide,
    approval_request,
    strategy_demote,
    strategy_mode_transition,
)
from quant.core.errors import ApplicationError, ValidationError
from quant.feature_store import feature_cache_entries_delete, version_definition
from quant.ml.training import validation_table
from quant.models import (
    ApprovalKind,
    ApprovalRequest,
    FeatureCacheEntry,
    FeatureSet,
    FeatureSetVersion,
    ModeChange,
    ModelArtifact,
    ModelStatus,
    Strategy,
    StrategyMode,
    StrategyVersion,
)
from quant.strategies.config import config_dump

ACTION_FORM_TEMPLATE = "admin/quant/action_form.html"


def action_form_response(
    modeladmin: admin.ModelAdmin,  # type: ignore[type-arg]
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    action: str,
    title: str,
    form: forms.Form,
    submit_label: str,
    intro: str = "",
    describe: Callable[[Any], str] = str,
) -> TemplateResponse:
    """The intermediate page of an action (inputs or a confirmation), posting back to it."""
    objects = list(queryset)
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.opts,
        "title": title,
        "intro": intro,
        "objects": [describe(o) for o in objects],
        "selected": [o.pk for o in objects],
        "form": form,
        "action": action,
        "submit_label": submit_label,
    }
    return TemplateResponse(request, ACTION_FORM_TEMPLATE, context)


def report_each(
    modeladmin: admin.ModelAdmin,  # type: ignore[type-arg]
    request: HttpRequest,
    items: Iterable[Model],
    service: Callable[[Any], str],
) -> None:
    """Call ``service`` per item; its text, or the service's error, becomes a message."""
    for item in items:
        try:
            text = service(item)
        except ApplicationError as error:
            modeladmin.message_user(request, f"{item}: {error.message}", messages.ERROR)
        else:
            modeladmin.message_user(request, text, messages.SUCCESS)


def _config_yaml(version: StrategyVersion) -> str:
    """The version's config as YAML in the canonical key order (the database keeps none)."""
    try:
        return config_dump(version.as_config())
    except ValidationError:
        # The class or its params changed since this version was stored: show it as stored.
        return yaml.safe_dump(version.config, sort_keys=True)


class PromotePaperForm(forms.Form):
    backtest_run_ids = forms.CharField(
        required=False,
        label="Backtest run ids",
        help_text="Comma-separated ids of succeeded runs (empty: the newest succeeded run of "
        "the current version)",
    )
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def clean_backtest_run_ids(self) -> list[int] | None:
        text = self.cleaned_data["backtest_run_ids"]
        ids = [part for part in re.split(r"[\s,]+", text) if part]
        bad = [part for part in ids if not part.isdigit()]
        if bad:
            raise forms.ValidationError(f"not run ids: {', '.join(bad)}")
        return [int(part) for part in ids] or None


class DemoteForm(forms.Form):
    to_mode = forms.ChoiceField(
        label="Target mode",
        choices=[(m.value, m.label) for m in (StrategyMode.RESEARCH, StrategyMode.PAPER)],
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))


class StrategyVersionInline(admin.TabularInline):  # type: ignore[type-arg]
    model = StrategyVersion
    fields = ("version_link", "short_hash", "interface_version", "source", "created_at")
    readonly_fields = fields
    ordering = ("-number",)
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Version")
    def version_link(self, version: StrategyVersion) -> SafeString:
        url = reverse("admin:quant_strategyversion_change", args=[version.pk])
        return format_html('<a href="{}">v{}</a>', url, version.number)

    @admin.display(description="Hash")
    def short_hash(self, version: StrategyVersion) -> str:
        return version.content_hash[:12]


@admin.register(Strategy)
class StrategyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "name",
        "class_name",
        "symbol_list",
        "timeframe",
        "mode",
        "reviewed_version",
        "version_number",
        "is_active",
        "updated_at",
    )
    list_filter = ("mode", "is_active", "class_name", "timeframe")
    list_select_related = ("current_version", "reviewed_version")
    search_fields = ("name",)
    fields = (
        "name",
        "class_name",
        "description",
        "symbols",
        "timeframe",
        "mode",
        "reviewed_version",
        "reviewed_at",
        "is_active",
        "current_version",
        "current_config",
        "source_path",
        "created_at",
        "updated_at",
    )
    readonly_fields = tuple(f for f in fields if f != "is_active")
    inlines = [StrategyVersionInline]
    actions = ["request_review", "request_paper", "request_live", "demote"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # strategies are created by `manage.py load_strategies`

    @admin.display(description="Symbols")
    def symbol_list(self, strategy: Strategy) -> str:
        return ", ".join(strategy.symbols)

    @admin.display(description="Version", ordering="current_version__number")
    def version_number(self, strategy: Strategy) -> str:
        version = strategy.current_version
        return f"v{version.number}" if version else "-"

    @admin.display(description="Current config")
    def current_config(self, strategy: Strategy) -> str:
        version = strategy.current_version
        return format_html("<pre>{}</pre>", _config_yaml(version)) if version else "-"

    def _transition(
        self,
        request: HttpRequest,
        queryset: QuerySet[Strategy],
        to_mode: StrategyMode,
        **extra: Any,
    ) -> None:
        """A promotion through ``strategy_mode_transition``, as the API's."""

        def move(strategy: Strategy) -> str:
            done = strategy_mode_transition(
                strategy=strategy, to_mode=to_mode, user=request.user, **extra
            )
            assert done.approval is not None  # promotions only: "Demote" has its own action
            return (
                f"{done.approval.get_kind_display()} of {strategy} requested (request "
                f"{done.approval.pk}): another user approves or rejects it under Approval requests"
            )

        report_each(self, request, queryset, move)

    @admin.action(description="Request review", permissions=["change"])
    def request_review(self, request: HttpRequest, queryset: QuerySet[Strategy]) -> None:
        def open_request(strategy: Strategy) -> str:
            approval = approval_request(
                strategy=strategy, kind=ApprovalKind.STRATEGY_REVIEW, user=request.user
            )
            return (
                f"{approval.get_kind_display()} of {strategy} requested (request {approval.pk}): "
                "another user approves or rejects it under Approval requests"
            )

        report_each(self, request, queryset, open_request)

    @admin.action(description="Request promotion to paper", permissions=["change"])
    def request_paper(
        self, request: HttpRequest, queryset: QuerySet[Strategy]
    ) -> HttpResponse | None:
        form = PromotePaperForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return action_form_response(
                self,
                request,
                queryset,
                action="request_paper",
                title="Request promotion to paper trading",
                intro="The request carries the backtests below as its evidence.",
                form=form,
                submit_label="Request promotion",
            )
        self._transition(
            request,
            queryset,
            StrategyMode.PAPER,
            backtest_run_ids=form.cleaned_data["backtest_run_ids"],
            reason=form.cleaned_data["note"],
        )
        return None

    @admin.action(description="Request promotion to live", permissions=["change"])
    def request_live(self, request: HttpRequest, queryset: QuerySet[Strategy]) -> None:
        self._transition(request, queryset, StrategyMode.LIVE, reason="")

    @admin.action(description="Demote", permissions=["change"])
    def demote(self, request: HttpRequest, queryset: QuerySet[Strategy]) -> HttpResponse | None:
        form = DemoteForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return action_form_response(
                self,
                request,
                queryset,
                action="demote",
                title="Demote strategies",
                intro="Demotion applies at once; no approval is needed to reduce risk.",
                form=form,
                submit_label="Demote",
                describe=lambda s: f"{s} ({s.mode})",
            )
        to_mode, reason = form.cleaned_data["to_mode"], form.cleaned_data["reason"]

        def demote_one(strategy: Strategy) -> str:
            before = strategy.mode
            done = strategy_demote(
                strategy=strategy, to_mode=to_mode, user=request.user, reason=reason
            )
            return f"{done} demoted: {before} → {done.mode}"

        report_each(self, request, queryset, demote_one)
        return None


@admin.register(StrategyVersion)
class StrategyVersionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Hash")
    def short_hash(self, version: StrategyVersion) -> str:
        return version.content_hash[:12]

    @admin.display(description="Config")
    def config_yaml(self, version: StrategyVersion) -> SafeString:
        return format_html("<pre>{}</pre>", _config_yaml(version))


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Requests are opened from the strategy list; here another user decides them."""

    list_display = (
        "id",
        "kind",
        "strategy",
        "status",
        "requested_by",
        "requested_at",
        "decided_by",
        "decided_at",
        "evidence_summary",
    )
    list_filter = ("status", "kind", "strategy")
    list_select_related = ("strategy", "requested_by", "decided_by")
    search_fields = ("strategy__name", "note")
    fields = (
        "kind",
        "strategy",
        "strategy_version",
        "status",
        "note",
        "evidence_pretty",
        "requested_by",
        "requested_at",
        "decided_by",
        "decided_at",
        "decision_note",
    )
    readonly_fields = fields
    actions = ["approve", "reject"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_decide_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("quant.change_approvalrequest")

    @admin.display(description="evidence")
    def evidence_summary(self, approval: ApprovalRequest) -> str:
        text = json.dumps(approval.evidence, sort_keys=True)
        return text if len(text) <= 80 else text[:77] + "..."

    @admin.display(description="evidence")
    def evidence_pretty(self, approval: ApprovalRequest) -> SafeString:
        return format_html("<pre>{}</pre>", json.dumps(approval.evidence, indent=2, sort_keys=True))

    def _decide(
        self, request: HttpRequest, queryset: QuerySet[ApprovalRequest], approve: bool
    ) -> None:
        def decide(approval: ApprovalRequest) -> str:
            done = approval_decide(approval=approval, user=request.user, approve=approve)
            strategy = Strategy.objects.get(pk=done.strategy_id)
            return f"{done.get_kind_display()} for {strategy}: {done.status} ({strategy.mode} mode)"

        report_each(self, request, queryset.select_related("strategy"), decide)

    @admin.action(description="Approve", permissions=["decide"])
    def approve(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest]) -> None:
        self._decide(request, queryset, approve=True)

    @admin.action(description="Reject", permissions=["decide"])
    def reject(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest]) -> None:
        self._decide(request, queryset, approve=False)


@admin.register(ModeChange)
class ModeChangeAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("at", "strategy", "from_mode", "to_mode", "changed_by", "approval", "reason")
    list_filter = ("to_mode", "strategy")
    list_select_related = ("strategy", "changed_by", "approval__strategy")
    search_fields = ("strategy__name", "reason")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- feature sets, their versions and cached features (issue 5) -------------------------
# Definitions come from YAML via ``load_feature_sets``; cache entries are written by
# ``quant.feature_store``. All read-only here; cached files are deleted by an action.


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

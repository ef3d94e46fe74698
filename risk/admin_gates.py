"""Admin of the human gates: strategies with their gate actions (request a review, request a
promotion, demote), the approval requests another user decides, and the mode-change audit.

The rows are the research app's (``Strategy``, ``ApprovalRequest``, ``ModeChange``); their
admin is the risk app's because its actions call ``risk.approvals``, the service that owns the
gates. Config fields are copies of the current version and read-only here; only
``is_active`` is edited directly.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from common.admin import ReadOnlyAdmin, ReadOnlyInline, action_form_response, report_each
from research.admin import config_yaml
from research.models import (
    ApprovalKind,
    ApprovalRequest,
    ModeChange,
    Strategy,
    StrategyMode,
    StrategyVersion,
)
from risk.approvals import (
    approval_decide,
    approval_request,
    strategy_demote,
    strategy_mode_transition,
)


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


class StrategyVersionInline(ReadOnlyInline):
    model = StrategyVersion
    fields = ("version_link", "short_hash", "interface_version", "source", "created_at")
    readonly_fields = fields
    ordering = ("-number",)
    show_change_link = False

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
        return format_html("<pre>{}</pre>", config_yaml(version)) if version else "-"

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


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(ReadOnlyAdmin):
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
class ModeChangeAdmin(ReadOnlyAdmin):
    list_display = ("at", "strategy", "from_mode", "to_mode", "changed_by", "approval", "reason")
    list_filter = ("to_mode", "strategy")
    list_select_related = ("strategy", "changed_by", "approval__strategy")
    search_fields = ("strategy__name", "reason")

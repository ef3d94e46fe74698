"""Admin: limits are read-only (changes go through a request and another user's approval), the
kill switch is operated through small forms, and its audit trail is read-only. The gates'
admin (strategies, approval requests, mode changes) is in ``risk.admin_gates``.

Every action calls the same service as the API and the ``killswitch`` command.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from common.admin import ACTION_FORM_TEMPLATE, ReadOnlyAdmin
from common.auth import client_ip
from quant.errors import ApplicationError
from quant.risk.limits import PLATFORM_FIELDS, STRATEGY_FIELDS, StrategyLimits
from research.models import Strategy
from risk import admin_gates, selectors, services
from risk.models import (
    ChangeScope,
    KillSwitchEvent,
    KillSwitchState,
    RiskLimitChange,
    RiskLimitSet,
    StrategyRiskLimit,
)

__all__ = ["admin_gates"]  # registered with this module (the admin autodiscovers admin.py)


def _request_link(query: str) -> SafeString:
    url = reverse("admin:risk_risklimitchange_add")
    return format_html('<a href="{}?{}">Request a change</a>', url, query)


@admin.register(RiskLimitSet)
class RiskLimitSetAdmin(ReadOnlyAdmin):
    list_display = ("id", "is_active", *PLATFORM_FIELDS, "change", "created_at", "request")
    list_filter = ("is_active",)

    @admin.display(description="")
    def request(self, row: RiskLimitSet) -> str:
        return _request_link("scope=platform") if row.is_active else ""


@admin.register(StrategyRiskLimit)
class StrategyRiskLimitAdmin(ReadOnlyAdmin):
    list_display = ("strategy", *STRATEGY_FIELDS, "change", "updated_at", "request")
    list_select_related = ("strategy",)

    @admin.display(description="")
    def request(self, row: StrategyRiskLimit) -> str:
        return _request_link(f"scope=strategy&strategy={row.strategy_id}")


class LimitChangeRequestForm(forms.Form):
    """Scope, the limits to change (blank = unchanged) and why."""

    scope = forms.ChoiceField(choices=ChangeScope.choices)
    strategy = forms.ModelChoiceField(
        queryset=Strategy.objects.all(), required=False, help_text="for strategy limits only"
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current, defaults = selectors.limits_current(), StrategyLimits()
        for name in PLATFORM_FIELDS:
            self.fields[name] = forms.DecimalField(
                required=False, help_text=f"platform, now {getattr(current, name)}"
            )
        for name in STRATEGY_FIELDS:
            self.fields[name] = forms.DecimalField(
                required=False, help_text=f"strategy, default {getattr(defaults, name)}"
            )

    def values(self) -> dict[str, Any]:
        names = (
            PLATFORM_FIELDS
            if self.cleaned_data["scope"] == ChangeScope.PLATFORM
            else STRATEGY_FIELDS
        )
        return {n: self.cleaned_data[n] for n in names if self.cleaned_data.get(n) is not None}


@admin.register(RiskLimitChange)
class RiskLimitChangeAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "scope",
        "strategy",
        "values",
        "status",
        "requested_by",
        "requested_at",
        "decided_by",
    )
    list_filter = ("status", "scope")
    list_select_related = ("strategy", "requested_by", "decided_by")
    actions = ["approve", "reject"]
    readonly_fields = (
        "scope",
        "strategy",
        "values",
        "previous_values",
        "reason",
        "requested_by",
        "requested_at",
        "status",
        "decided_by",
        "decided_at",
        "decision_note",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("risk.add_risklimitchange")

    def has_decide_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("risk.change_risklimitchange")

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The request form; the service validates and stores (never a direct edit)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = LimitChangeRequestForm(request.POST or None, initial=request.GET.dict())
        if request.method == "POST" and form.is_valid():
            try:
                change = services.limit_change_request(
                    user=request.user,
                    scope=form.cleaned_data["scope"],
                    strategy=form.cleaned_data["strategy"],
                    values=form.values(),
                    reason=form.cleaned_data["reason"],
                )
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                self.message_user(
                    request, f"Change #{change.pk} requested: another user must approve it."
                )
                return HttpResponseRedirect(reverse("admin:risk_risklimitchange_changelist"))
        return _form_page(request, self, "Request a risk limit change", form, submit="Request")

    @admin.action(description="Approve the selected changes", permissions=["decide"])
    def approve(self, request: HttpRequest, queryset: QuerySet[RiskLimitChange]) -> None:
        for change in queryset:
            self._decide(request, change, services.limit_change_approve, "approved and applied")

    @admin.action(description="Reject the selected changes", permissions=["decide"])
    def reject(self, request: HttpRequest, queryset: QuerySet[RiskLimitChange]) -> None:
        for change in queryset:
            self._decide(request, change, services.limit_change_reject, "rejected")

    def _decide(
        self, request: HttpRequest, change: RiskLimitChange, service: Any, done: str
    ) -> None:
        try:
            service(change=change, user=request.user)
        except ApplicationError as error:
            self.message_user(request, error.message, messages.ERROR)
        else:
            self.message_user(request, f"Change #{change.pk} {done}.", messages.SUCCESS)


class ActivateForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))
    flatten = forms.BooleanField(required=False, help_text="also close positions (default: freeze)")


class ActivateScopeForm(ActivateForm):
    strategy = forms.ModelChoiceField(
        queryset=Strategy.objects.all(), required=False, empty_label="global (every strategy)"
    )
    field_order = ["strategy", "reason", "flatten"]


class DeactivateForm(forms.Form):
    admin_code = forms.CharField(widget=forms.PasswordInput, required=False)


@admin.register(KillSwitchState)
class KillSwitchStateAdmin(ReadOnlyAdmin):
    list_display = ("label", "active", "mode", "reason", "source", "activated_at", "activated_by")
    list_select_related = ("strategy", "activated_by")
    actions = ["activate", "deactivate"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_operate_permission(request)

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("risk.change_killswitchstate")

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Activate the kill switch of any scope (a strategy's row is made on first use)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ActivateScopeForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            scope = form.cleaned_data["strategy"] or "global"
            if self._activate(request, scope, form):
                return HttpResponseRedirect(reverse("admin:risk_killswitchstate_changelist"))
        return _form_page(request, self, "Activate the kill switch", form, submit="Activate")

    @admin.action(description="Activate the kill switch…", permissions=["operate"])
    def activate(self, request: HttpRequest, queryset: QuerySet[KillSwitchState]) -> Any:
        form = ActivateForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            for state in queryset:
                self._activate(request, state.strategy or "global", form)
            return None
        return _form_page(
            request, self, "Activate the kill switch", form, "Activate", queryset, "activate"
        )

    @admin.action(description="Deactivate the kill switch…", permissions=["operate"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[KillSwitchState]) -> Any:
        form = DeactivateForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            for state in queryset:
                try:
                    services.killswitch_deactivate(
                        admin_code=form.cleaned_data["admin_code"],
                        scope=state.strategy or "global",
                        user=request.user,
                        client=client_ip(request),
                    )
                except ApplicationError as error:
                    self.message_user(request, error.message, messages.ERROR)
                    break  # one wrong code counts once, not once per selected row
                else:
                    self.message_user(
                        request, f"Kill switch ({state.label}) is off.", messages.SUCCESS
                    )
            return None
        return _form_page(
            request, self, "Deactivate the kill switch", form, "Deactivate", queryset, "deactivate"
        )

    def _activate(self, request: HttpRequest, scope: Any, form: forms.Form) -> bool:
        try:
            state = services.killswitch_activate(
                scope=scope,
                reason=form.cleaned_data["reason"],
                flatten=form.cleaned_data["flatten"],
                user=request.user,
            )
        except ApplicationError as error:
            self.message_user(request, error.message, messages.ERROR)
            return False
        self.message_user(request, f"Kill switch ({state.label}) ACTIVATED.", messages.WARNING)
        return True


@admin.register(KillSwitchEvent)
class KillSwitchEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "action", "scope", "strategy", "mode", "source", "user", "reason")
    list_filter = ("action", "scope", "source")
    list_select_related = ("strategy", "user")


def _form_page(
    request: HttpRequest,
    model_admin: admin.ModelAdmin,  # type: ignore[type-arg]
    title: str,
    form: forms.Form,
    submit: str,
    queryset: QuerySet[Any] | None = None,
    action: str = "",
) -> TemplateResponse:
    """One small form page: a request/activation form, or an action's intermediate step."""
    objects = list(queryset) if queryset is not None else []
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "form": form,
        "submit_label": submit,
        "objects": [str(o) for o in objects],
        "selected": [o.pk for o in objects],
        "action": action,
        "opts": model_admin.model._meta,
    }
    return TemplateResponse(request, ACTION_FORM_TEMPLATE, context)

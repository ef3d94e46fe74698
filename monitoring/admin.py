"""Admin: component heartbeats (read-only) and alerts (acknowledge action, deliveries inline)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from monitoring.models import Alert, AlertDelivery, ComponentHeartbeat
from monitoring.services import alert_acknowledge


@admin.register(ComponentHeartbeat)
class ComponentHeartbeatAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("component", "instance", "last_seen")
    list_filter = ("component",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AcknowledgedFilter(admin.SimpleListFilter):
    title = "acknowledged"
    parameter_name = "acknowledged"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "Not acknowledged"), ("yes", "Acknowledged")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "no":
            return queryset.filter(acknowledged_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(acknowledged_at__isnull=False)
        return queryset


class AlertDeliveryInline(admin.TabularInline):  # type: ignore[type-arg]
    model = AlertDelivery
    extra = 0
    can_delete = False
    fields = ("channel", "severity", "status", "attempts", "delivered_to", "last_error", "sent_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "severity",
        "source",
        "message",
        "count",
        "first_seen",
        "last_seen",
        "is_acknowledged",
        "acknowledged_by",
    )
    list_filter = ("severity", "source", AcknowledgedFilter)
    search_fields = ("message", "key", "source")
    date_hierarchy = "last_seen"
    list_select_related = ("acknowledged_by",)
    inlines = [AlertDeliveryInline]
    actions = ["acknowledge"]
    readonly_fields = (
        "severity",
        "source",
        "key",
        "message",
        "details",
        "count",
        "first_seen",
        "last_seen",
        "acknowledged_by",
        "acknowledged_at",
    )

    @admin.display(boolean=True, description="Acknowledged", ordering="acknowledged_at")
    def is_acknowledged(self, alert: Alert) -> bool:
        return alert.acknowledged

    @admin.action(description="Acknowledge selected alerts")
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        done = 0
        for alert in queryset.filter(acknowledged_at__isnull=True):
            alert_acknowledge(alert=alert, user=request.user)  # type: ignore[arg-type]
            done += 1
        self.message_user(request, f"{done} alert(s) acknowledged.", messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # alerts are raised by the platform, not typed in

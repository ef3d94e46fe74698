"""Admin: component heartbeats (read-only)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from monitoring.models import ComponentHeartbeat


@admin.register(ComponentHeartbeat)
class ComponentHeartbeatAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("component", "instance", "last_seen")
    list_filter = ("component",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

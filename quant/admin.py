"""Admin: strategies (configs come from YAML via ``load_strategies``) and their version history.

Config fields are copies of the current version and are read-only here; versions are history
and can be looked at, never added, edited or deleted. Mode changes wait for the approval
workflow, so only ``is_active`` is editable for now.
"""

from __future__ import annotations

from typing import Any

import yaml
from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from quant.core.errors import ValidationError
from quant.models import Strategy, StrategyVersion
from quant.strategies.config import config_dump


def _config_yaml(version: StrategyVersion) -> str:
    """The version's config as YAML in the canonical key order (the database keeps none)."""
    try:
        return config_dump(version.as_config())
    except ValidationError:
        # The class or its params changed since this version was stored: show it as stored.
        return yaml.safe_dump(version.config, sort_keys=True)


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
        "version_number",
        "is_active",
        "updated_at",
    )
    list_filter = ("mode", "is_active", "class_name", "timeframe")
    list_select_related = ("current_version",)
    search_fields = ("name",)
    fields = (
        "name",
        "class_name",
        "description",
        "symbols",
        "timeframe",
        "mode",
        "is_active",
        "current_version",
        "current_config",
        "source_path",
        "created_at",
        "updated_at",
    )
    readonly_fields = tuple(f for f in fields if f != "is_active")
    inlines = [StrategyVersionInline]

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

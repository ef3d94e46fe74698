"""Admin: the simulated venue's book, read-only (only the venue changes it)."""

from __future__ import annotations

from django.contrib import admin

from common.admin import ReadOnlyAdmin, ReadOnlyInline
from trading.venue.models import VenueAccount, VenueFill, VenueOrder, VenuePosition


class VenueFillInline(ReadOnlyInline):
    model = VenueFill
    fields = ("ts", "quantity", "price", "commission")
    readonly_fields = fields


@admin.register(VenueAccount)
class VenueAccountAdmin(ReadOnlyAdmin):
    list_display = ("name", "cash", "starting_cash", "created_at")


@admin.register(VenueOrder)
class VenueOrderAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "account",
        "client_order_id",
        "symbol",
        "side",
        "order_type",
        "quantity",
        "status",
        "filled_qty",
        "filled_avg_price",
    )
    list_filter = ("account", "status", "side", "order_type")
    search_fields = ("client_order_id", "broker_order_id", "symbol")
    list_select_related = ("account",)
    inlines = [VenueFillInline]


@admin.register(VenuePosition)
class VenuePositionAdmin(ReadOnlyAdmin):
    list_display = ("account", "symbol", "quantity", "avg_price", "updated_at")
    list_filter = ("account",)
    list_select_related = ("account",)

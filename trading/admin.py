"""Admin: orders, fills, positions, account snapshots, reconciliation, safe mode, runtimes.

Everything is read-only: order-path tables change only through ``trading.services`` (state
machine, fills in the fill's transaction). The operator's levers are actions calling the same
services as the API: cancel an order, flatten a position, reconcile with the broker now.
An action needs the model's "change" permission (superusers have it), though no edit form is
ever offered.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.html import format_html
from django.utils.safestring import SafeString

from common.admin import ReadOnlyAdmin as BaseReadOnlyAdmin
from common.admin import ReadOnlyInline, action_form_response
from quant.errors import ApplicationError
from quant.orders.fsm import OrderStatus
from trading.brokers import broker_for_mode
from trading.models import (
    AccountSnapshot,
    Fill,
    Order,
    OrderEvent,
    OrderSource,
    Position,
    ReconciliationRun,
    SafeMode,
    StrategyPauseEvent,
    StrategyRuntime,
    TradingMode,
)
from trading.services.orders import order_cancel
from trading.services.pauses import strategy_pause_lift
from trading.services.reconcile import reconcile
from trading.services.submit import position_flatten


def plain(value: Decimal | None) -> str:
    """A stored decimal without trailing zeros and never in exponent form ("-" for none)."""
    return "-" if value is None else format(value.normalize(), "f")


def pretty_json(value: Any) -> SafeString:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


def order_outcome(order: Order) -> str:
    """One line for a message: id, status, fill, or the rejection reason."""
    if order.status == OrderStatus.REJECTED:
        return f"{order.client_order_id} rejected: {order.reject_reason}"
    filled = f"filled {plain(order.filled_quantity)} of {plain(order.quantity)}"
    if order.filled_quantity:
        filled += f" @ {plain(order.avg_fill_price)}"
    return f"{order.client_order_id} {order.status}, {filled}"


class ReadOnlyAdmin(BaseReadOnlyAdmin):
    def has_operate_permission(self, request: HttpRequest) -> bool:
        """Actions: the model's change permission, checked on the user (not the admin)."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")


class OrderEventInline(ReadOnlyInline):
    model = OrderEvent
    fields = ("at", "event", "from_status", "to_status", "details")
    readonly_fields = fields


class FillInline(ReadOnlyInline):
    model = Fill
    fields = ("ts", "quantity", "price", "commission", "broker_fill_id")
    readonly_fields = fields


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "strategy",
        "mode",
        "symbol",
        "side",
        "qty",
        "order_type",
        "status",
        "filled",
        "avg_price",
        "reject_reason",
    )
    list_filter = ("status", "mode", "side", "order_type", "source", "strategy")
    list_select_related = ("strategy",)
    search_fields = ("client_order_id", "symbol")
    date_hierarchy = "created_at"
    inlines = [OrderEventInline, FillInline]
    actions = ["cancel_orders"]

    @admin.display(description="qty", ordering="quantity")
    def qty(self, order: Order) -> str:
        return plain(order.quantity)

    @admin.display(description="filled", ordering="filled_quantity")
    def filled(self, order: Order) -> str:
        return plain(order.filled_quantity)

    @admin.display(description="avg price", ordering="avg_fill_price")
    def avg_price(self, order: Order) -> str:
        return plain(order.avg_fill_price)

    @admin.action(description="Cancel order", permissions=["operate"])
    def cancel_orders(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        for order in queryset:
            if not order.is_open:
                self.message_user(
                    request,
                    f"{order.client_order_id} is already {order.status}: nothing to cancel",
                    messages.WARNING,
                )
                continue
            try:
                done = order_cancel(
                    order=order,
                    broker=broker_for_mode(order.mode),
                    reason=f"cancelled by {request.user}",
                )
            except ApplicationError as error:
                self.message_user(
                    request, f"{order.client_order_id}: {error.message}", messages.ERROR
                )
                continue
            level = messages.SUCCESS if done.status == OrderStatus.CANCELLED else messages.WARNING
            note = " (cancel requested, the broker still works it)" if done.is_open else ""
            self.message_user(request, order_outcome(done) + note, level)


class FlattenForm(forms.Form):
    reason = forms.CharField(
        max_length=150, initial="operator flatten", help_text="Stored with the closing order"
    )


@admin.register(Position)
class PositionAdmin(ReadOnlyAdmin):
    list_display = (
        "strategy",
        "mode",
        "symbol",
        "qty",
        "avg",
        "realized",
        "last_fill_at",
        "updated_at",
    )
    list_filter = ("mode", "strategy")
    list_select_related = ("strategy",)
    search_fields = ("symbol", "strategy__name")
    actions = ["flatten_positions"]

    @admin.display(description="quantity", ordering="quantity")
    def qty(self, position: Position) -> str:
        return plain(position.quantity)

    @admin.display(description="avg price", ordering="avg_price")
    def avg(self, position: Position) -> str:
        return plain(position.avg_price)

    @admin.display(description="realized P&L", ordering="realized_pnl")
    def realized(self, position: Position) -> str:
        return plain(position.realized_pnl)

    @admin.action(description="Flatten position", permissions=["operate"])
    def flatten_positions(
        self, request: HttpRequest, queryset: QuerySet[Position]
    ) -> HttpResponse | None:
        form = FlattenForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return action_form_response(
                self,
                request,
                queryset,
                action="flatten_positions",
                title="Flatten positions",
                intro="A market order closes each position below (through the risk gateway).",
                form=form,
                submit_label="Flatten",
                describe=lambda p: f"{p.strategy} {p.mode} {p.symbol}: {plain(p.quantity)}",
            )
        reason = f"flattened by {request.user}: {form.cleaned_data['reason']}"
        for position in queryset.select_related("strategy"):
            label = f"{position.strategy} {position.mode} {position.symbol}"
            try:
                order = position_flatten(
                    position=position,
                    broker=broker_for_mode(position.mode),
                    source=OrderSource.OPERATOR,
                    reason=reason,
                )
            except ApplicationError as error:
                self.message_user(request, f"{label}: {error.message}", messages.ERROR)
                continue
            if order is None:
                self.message_user(request, f"{label}: already flat", messages.INFO)
            elif order.status == OrderStatus.REJECTED:
                self.message_user(request, f"{label}: {order_outcome(order)}", messages.ERROR)
            else:
                self.message_user(request, f"{label}: {order_outcome(order)}", messages.SUCCESS)
        return None


@admin.register(Fill)
class FillAdmin(ReadOnlyAdmin):
    list_display = ("ts", "strategy", "mode", "symbol", "side", "quantity", "price", "commission")
    list_filter = ("mode", "side", "strategy")
    list_select_related = ("strategy",)
    search_fields = ("symbol", "order__client_order_id", "broker_fill_id")


@admin.register(AccountSnapshot)
class AccountSnapshotAdmin(ReadOnlyAdmin):
    list_display = ("ts", "mode", "broker", "equity", "cash", "buying_power")
    list_filter = ("mode", "broker")
    date_hierarchy = "ts"


class ReconcileForm(forms.Form):
    modes = forms.MultipleChoiceField(
        choices=TradingMode.choices, widget=forms.CheckboxSelectMultiple
    )


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "mode", "broker", "matched", "problem_count", "error")
    list_filter = ("mode", "matched", "broker")
    fields = (
        "mode",
        "broker",
        "started_at",
        "finished_at",
        "matched",
        "error",
        "discrepancies_pretty",
        "repaired_pretty",
    )
    readonly_fields = fields
    actions = ["reconcile_now"]

    @admin.display(description="discrepancies")
    def problem_count(self, run: ReconciliationRun) -> int:
        return len(run.discrepancies or [])

    @admin.display(description="discrepancies")
    def discrepancies_pretty(self, run: ReconciliationRun) -> SafeString:
        return pretty_json(run.discrepancies)

    @admin.display(description="orders brought up to date")
    def repaired_pretty(self, run: ReconciliationRun) -> SafeString:
        return pretty_json(run.repaired)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        """ "Reconcile now" needs no selected run (the first run of a fresh install)."""
        if (
            request.method == "POST"
            and request.POST.get("action") == "reconcile_now"
            and not request.POST.getlist(ACTION_CHECKBOX_NAME)
        ):
            if not self.has_operate_permission(request):
                raise PermissionDenied
            response = self.reconcile_now(request, self.get_queryset(request).none())
            return response or HttpResponseRedirect(request.get_full_path())
        return super().changelist_view(request, extra_context)

    @admin.action(description="Reconcile now", permissions=["operate"])
    def reconcile_now(
        self, request: HttpRequest, queryset: QuerySet[ReconciliationRun]
    ) -> HttpResponse | None:
        initial = sorted({run.mode for run in queryset}) or [TradingMode.PAPER.value]
        form = ReconcileForm(
            request.POST if "apply" in request.POST else None, initial={"modes": initial}
        )
        if not form.is_valid():
            return action_form_response(
                self,
                request,
                queryset,
                action="reconcile_now",
                title="Reconcile with the broker",
                intro="Compare positions and open orders with the broker for each mode.",
                form=form,
                submit_label="Reconcile",
            )
        for mode in form.cleaned_data["modes"]:
            try:
                run = reconcile(mode=mode, broker=broker_for_mode(mode))
            except ApplicationError as error:
                self.message_user(request, f"{mode}: {error.message}", messages.ERROR)
                continue
            if run.error:
                self.message_user(request, f"{mode}: {run.error}", messages.ERROR)
            elif run.matched:
                self.message_user(request, f"{mode}: matched the broker", messages.SUCCESS)
            else:
                count = len(run.discrepancies)
                self.message_user(
                    request,
                    f"{mode}: {count} discrepancies, safe mode is on (see run {run.pk})",
                    messages.ERROR,
                )
        return None


@admin.register(SafeMode)
class SafeModeAdmin(ReadOnlyAdmin):
    list_display = ("mode", "active", "since", "reason")


@admin.register(StrategyPauseEvent)
class StrategyPauseEventAdmin(ReadOnlyAdmin):
    """The audit of strategy pauses: each pause a breached limit stored, each lift."""

    list_display = ("at", "strategy", "mode", "action", "limit", "until", "user", "reason")
    list_filter = ("action", "mode", "limit")
    list_select_related = ("strategy", "user")


class LiftPauseForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))


@admin.register(StrategyRuntime)
class StrategyRuntimeAdmin(ReadOnlyAdmin):
    list_display = (
        "strategy",
        "mode",
        "last_bar_ts",
        "last_tick_at",
        "paused_at",
        "paused_until",
        "paused_reason",
        "last_error",
    )
    actions = ["lift_pause"]

    @admin.action(description="Lift the pause", permissions=["operate"])
    def lift_pause(
        self, request: HttpRequest, queryset: QuerySet[StrategyRuntime]
    ) -> HttpResponse | None:
        form = LiftPauseForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return action_form_response(
                self,
                request,
                queryset,
                action="lift_pause",
                title="Lift strategy pauses",
                intro="The strategy may open positions again; the breached measure (drawdown "
                "or the session's loss) starts afresh from now.",
                form=form,
                submit_label="Lift the pause",
            )
        for runtime in queryset.select_related("strategy"):
            try:
                strategy_pause_lift(
                    strategy=runtime.strategy,
                    mode=runtime.mode,
                    user=request.user,
                    reason=form.cleaned_data["reason"],
                )
            except ApplicationError as error:
                self.message_user(request, f"{runtime}: {error.message}", messages.ERROR)
            else:
                self.message_user(
                    request, f"{runtime.strategy} ({runtime.mode}): pause lifted", messages.SUCCESS
                )
        return None

    list_filter = ("mode", "strategy")
    list_select_related = ("strategy",)

"""The admin kit shared by the apps: read-only bases for rows that only services write, the
intermediate page of an action that asks for inputs, and one message per item of an action."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from quant.errors import ApplicationError


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Shown in the admin, never added, edited or deleted there (actions call services)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):  # type: ignore[type-arg]
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


ACTION_FORM_TEMPLATE = "admin/action_form.html"


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

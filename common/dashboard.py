"""The embedded dashboard's page machinery: signed-in pages made of refreshing fragments.

A page is a template plus named fragments. Each fragment is a partial template and the
function that reads its data; the page renders every fragment once, and the same URL with
``?fragment=<name>`` returns only that partial (``static/js/dashboard.js`` re-fetches it every
``refresh`` milliseconds, and at once when a Channels push names one of its ``topics``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from common.auth import Role, role_of

CRITICAL_MS = 5000  # positions, P&L, kill switch, alerts
NORMAL_MS = 10000  # everything else

Context = dict[str, Any]


@dataclass(frozen=True)
class Fragment:
    template: str
    read: Callable[[HttpRequest], Context]
    refresh: int = NORMAL_MS
    topics: tuple[str, ...] = ()


def push_enabled() -> bool:
    """Channels pushes changes only across processes, i.e. with the Redis channel layer."""
    return bool(getattr(settings, "REDIS_URL", ""))


def role_context(request: HttpRequest) -> Context:
    role = role_of(request.user)
    return {
        "role": role,
        "role_label": role.label if role else "",
        "can_operate": role is not None and role >= Role.OPERATOR,
        "can_admin": role is not None and role >= Role.ADMIN,
        "push_enabled": push_enabled(),
    }


def render_page(
    request: HttpRequest,
    template: str,
    fragments: Mapping[str, Fragment],
    context: Context | Callable[[], Context] | None = None,
) -> HttpResponse:
    """The whole page, or with ``?fragment=name`` just that fragment's partial.

    ``context`` (the page's data outside its fragments) may be a function: it is read for the
    whole page only, never for a fragment's refresh."""
    base = role_context(request)
    name = request.GET.get("fragment")
    if name is not None:
        fragment = fragments.get(name)
        if fragment is None:
            raise Http404(f"no fragment {name!r} on this page")
        response = render(request, fragment.template, {**base, **fragment.read(request)})
        response["Cache-Control"] = "no-store"
        return response
    merged = {**base, **((context() if callable(context) else context) or {})}
    for fragment in fragments.values():
        merged.update(fragment.read(request))
    merged["fragments"] = {
        key: {"refresh": f.refresh, "topics": " ".join(f.topics), "template": f.template}
        for key, f in fragments.items()
    }
    return render(request, template, merged)


def dashboard_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A dashboard page: signed-in users only (anonymous ones go to ``LOGIN_URL``)."""
    return login_required(view)


def require_role(request: HttpRequest, role: Role) -> None:
    """Refuse a page write (a plain form POST) to a user below ``role``."""
    from django.core.exceptions import PermissionDenied

    current = role_of(request.user)
    if current is None or current < role:
        raise PermissionDenied(f"this needs the {role.label} role")

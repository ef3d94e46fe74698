"""Dashboard pages of the research app: sign in and out, strategies and one strategy."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from quant import pages
from quant.auth import Role
from quant.core.errors import ValidationError
from quant.dashboard import (
    CRITICAL_MS,
    NORMAL_MS,
    Fragment,
    dashboard_view,
    render_page,
    require_role,
)
from quant.models import Strategy
from quant.services import strategy_config_update


class SignInView(LoginView):
    template_name = "dashboard/signin.html"
    redirect_authenticated_user = True


@require_http_methods(["GET", "POST"])
def signout(request: HttpRequest) -> HttpResponse:
    """POST signs out; GET asks first (a link must not sign anyone out)."""
    if request.method == "POST":
        logout(request)
        return redirect("signin")
    return render(request, "dashboard/signout.html")


@dashboard_view
def strategies(request: HttpRequest) -> HttpResponse:
    fragments = {
        "strategies": Fragment(
            "quant/_strategies_table.html",
            lambda r: {"rows": pages.strategies_overview()},
            NORMAL_MS,
            ("strategies", "runs", "positions"),
        )
    }
    return render_page(request, "quant/strategies.html", fragments)


@dashboard_view
@require_http_methods(["GET", "POST"])
def strategy_detail(request: HttpRequest, strategy_id: int) -> HttpResponse:
    """Performance, positions, config editor, versions, mode changes and approvals.

    The editor saves through ``PATCH /v1/strategies/<id>`` from the browser; without
    JavaScript it posts here and gets the same validation (admins only)."""
    strategy = get_object_or_404(Strategy.objects.select_related("current_version"), pk=strategy_id)
    problems: list[str] = []
    text = None
    if request.method == "POST":
        require_role(request, Role.ADMIN)
        text = request.POST.get("config_yaml", "")
        before = strategy.current_version_id
        try:
            config = pages.config_yaml_parse(strategy=strategy, text=text)
            version = strategy_config_update(strategy=strategy, config=config)
        except ValidationError as error:
            problems = list(error.details.get("problems") or [error.message])
        else:
            changed = version.pk != before
            messages.success(
                request, f"Saved as version {version.number}." if changed else "No change."
            )
            mode = Strategy.objects.values_list("mode", flat=True).get(pk=strategy.pk)
            if mode != strategy.mode:
                messages.warning(
                    request,
                    f"The strategy left {strategy.mode} trading and is back in research mode: "
                    f"version {version.number} must pass its review and promotion again.",
                )
            return redirect("strategy-detail", strategy_id=strategy.pk)
    fragments = {
        "book": Fragment(
            "quant/_strategy_book.html",
            lambda r: pages.strategy_book(strategy),
            CRITICAL_MS,
            ("positions", "killswitch"),
        )
    }

    def context() -> dict[str, object]:
        data = pages.strategy_page(strategy)
        if text is not None:
            data["config_text"] = text
        data["problems"] = problems
        return data

    response = render_page(request, "quant/strategy_detail.html", fragments, context)
    if problems:
        response.status_code = 422
    return response

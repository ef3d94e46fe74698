"""Signing in and out of the dashboard."""

from __future__ import annotations

from django.contrib.auth import logout
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods


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

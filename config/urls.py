"""The URLs: the embedded dashboard, operations, the admin, ``/v1`` and report files."""

from collections.abc import Callable
from typing import cast

from csp.decorators import csp_update
from django.contrib import admin
from django.http import HttpRequest, HttpResponseBase
from django.urls import path

from backtests import views as backtests_views
from config.api import api
from config.dashboard import landing, overview, session, strategies
from monitoring import views as monitoring_views
from risk import views as risk_views
from trading import views as trading_views

# A backtest report is one self-contained file: plotly.js, its charts and its styles inline.
_report_csp = csp_update({"script-src": ["'unsafe-inline'"]})


def report_policy(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """The report views with the wider script policy (their own inline plotly.js)."""
    return _report_csp(cast("Callable[[HttpRequest], HttpResponseBase]", view))


urlpatterns = [
    # the embedded dashboard
    path("", overview.overview, name="overview"),
    path("signin", session.SignInView.as_view(), name="signin"),
    path("signout", session.signout, name="signout"),
    path("strategies", strategies.strategies, name="strategies"),
    path("strategies/<int:strategy_id>", strategies.strategy_detail, name="strategy-detail"),
    path("positions", trading_views.positions, name="positions"),
    path("runs", backtests_views.runs, name="runs"),
    path("runs/<int:run_id>", backtests_views.run_detail, name="run-detail"),
    path("walk-forward", backtests_views.walk_forward_runs, name="walk-forward"),
    path(
        "walk-forward/<int:run_id>", backtests_views.walk_forward_detail, name="walk-forward-detail"
    ),
    path("health", overview.health, name="health"),
    path("settings", risk_views.settings_page, name="settings"),
    path("marketdata", landing.landing, name="landing"),
    # operations, admin, report files
    path("healthz", monitoring_views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("v1/", api.urls),
    path(
        "backtests/runs/<int:run_id>/report.<str:kind>",
        report_policy(backtests_views.run_report),
        name="backtest-report",
    ),
    path(
        "backtests/walk-forward/<int:run_id>/report.<str:kind>",
        report_policy(backtests_views.walk_forward_report),
        name="walkforward-report",
    ),
]

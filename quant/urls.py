from django.contrib import admin
from django.urls import path

from backtests import views as backtests_views
from marketdata import views as marketdata_views
from monitoring import views as monitoring_views
from quant import views as quant_views
from quant.api import api
from risk import views as risk_views
from trading import views as trading_views

urlpatterns = [
    # the embedded dashboard
    path("", monitoring_views.overview, name="overview"),
    path("signin", quant_views.SignInView.as_view(), name="signin"),
    path("signout", quant_views.signout, name="signout"),
    path("strategies", quant_views.strategies, name="strategies"),
    path("strategies/<int:strategy_id>", quant_views.strategy_detail, name="strategy-detail"),
    path("positions", trading_views.positions, name="positions"),
    path("runs", backtests_views.runs, name="runs"),
    path("runs/<int:run_id>", backtests_views.run_detail, name="run-detail"),
    path("walk-forward", backtests_views.walk_forward_runs, name="walk-forward"),
    path(
        "walk-forward/<int:run_id>", backtests_views.walk_forward_detail, name="walk-forward-detail"
    ),
    path("health", monitoring_views.health, name="health"),
    path("settings", risk_views.settings_page, name="settings"),
    path("marketdata", marketdata_views.landing, name="landing"),
    # operations, admin, report files
    path("healthz", monitoring_views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("v1/", api.urls),
    path(
        "backtests/runs/<int:run_id>/report.<str:kind>",
        backtests_views.run_report,
        name="backtest-report",
    ),
    path(
        "backtests/walk-forward/<int:run_id>/report.<str:kind>",
        backtests_views.walk_forward_report,
        name="walkforward-report",
    ),
]

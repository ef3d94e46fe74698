from django.contrib import admin
from django.urls import path

from backtests import views as backtests_views
from marketdata import views as marketdata_views
from monitoring import views as monitoring_views

urlpatterns = [
    path("", marketdata_views.landing, name="landing"),
    path("healthz", monitoring_views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
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

from django.contrib import admin
from django.urls import path

from marketdata import views as marketdata_views
from monitoring import views as monitoring_views

urlpatterns = [
    path("", marketdata_views.landing, name="landing"),
    path("healthz", monitoring_views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
]

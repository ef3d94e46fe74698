from django.apps import AppConfig


class CommonConfig(AppConfig):
    """The app-agnostic Django kit (API shapes, auth and roles, DB helpers, admin and dashboard
    machinery); an app so that its template tags load."""

    name = "common"
    verbose_name = "Common"

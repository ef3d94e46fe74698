from django.apps import AppConfig


class CommonConfig(AppConfig):
    """The app-agnostic Django kit (API shapes, auth and roles, DB helpers, admin and dashboard
    machinery); an app so that its template tags load and the API's token families
    (``common.models``) have a table."""

    name = "common"
    verbose_name = "Common"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from common import tasks  # noqa: F401  (registers auth.token_families_purge)
        from common.auth import connect_token_revocation

        connect_token_revocation()

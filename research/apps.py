from django.apps import AppConfig


class ResearchConfig(AppConfig):
    """Strategies and their versions, feature sets, model artifacts and approvals' rows.

    The label stays ``quant`` (the app's first name): existing databases keep their tables,
    migration history, content types and permissions (``quant.change_strategy``)."""

    name = "research"
    label = "quant"
    verbose_name = "Research"

    def ready(self) -> None:
        from django.core.files.storage import default_storage

        from common.auth import connect_principal_invalidation
        from quant.ml.artifacts import bundle_store_install
        from research import tasks  # noqa: F401  (registers the tasks the services queue by name)

        connect_principal_invalidation()
        bundle_store_install(default_storage)  # trained models are stored there by name

from django.apps import AppConfig


class QuantConfig(AppConfig):
    name = "quant"
    verbose_name = "Research"

    def ready(self) -> None:
        from quant.auth import connect_principal_invalidation

        connect_principal_invalidation()

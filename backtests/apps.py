from django.apps import AppConfig


class BacktestsConfig(AppConfig):
    name = "backtests"

    def ready(self) -> None:
        from backtests import tasks  # noqa: F401  (registers the tasks the services queue by name)

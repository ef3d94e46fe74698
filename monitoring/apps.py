from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"

    def ready(self) -> None:
        from monitoring import signals  # noqa: F401  (connects the worker heartbeat)
        from monitoring.push import connect

        connect()  # the dashboard's live updates (with the Redis channel layer)

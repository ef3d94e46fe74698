from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"

    def ready(self) -> None:
        from monitoring import push
        from monitoring import signals  # noqa: F401  (connects the worker heartbeat)

        push.connect()  # the dashboard's live updates (with the Redis channel layer)

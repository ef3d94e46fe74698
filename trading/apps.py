from django.apps import AppConfig


class TradingConfig(AppConfig):
    name = "trading"

    def ready(self) -> None:
        from risk.signals import kill_switch_activated
        from trading import signals  # noqa: F401  (Celery worker start-up reconciliation)
        from trading.receivers import on_kill_switch_activated

        kill_switch_activated.connect(on_kill_switch_activated, dispatch_uid="trading.kill_switch")

from django.apps import AppConfig


class ShellConfig(AppConfig):
    """The project shell as an app: its management commands (``run_platform``, ``seed_demo``)
    and the wiring that hands one app's service to another at start-up."""

    name = "config"
    verbose_name = "Platform"

    def ready(self) -> None:
        from config import tasks, wiring  # noqa: F401  (tasks: registers jobs.reap)

        wiring.install()

"""``manage.py load_strategies [--path DIR_OR_FILE] [--check]``: sync strategy YAML configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from quant.errors import ApplicationError
from research.services import strategies_load_directory, strategy_configs_validate


class Command(BaseCommand):
    help = (
        "Load strategy configs (YAML) into the database; each changed config becomes a new "
        "version. Any invalid file rejects the whole load."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--path",
            default=None,
            help="a directory of *.yaml files or one file (default: configs/strategies)",
        )
        parser.add_argument(
            "--check", action="store_true", help="only validate the files; write nothing"
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="a file that changed wins over an edit made since it was last loaded",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"] or Path(settings.BASE_DIR) / "configs" / "strategies")
        try:
            if options["check"]:
                for item in strategy_configs_validate(path=path):
                    self.stdout.write(f"{item.value.name}: valid ({item.path})")
                return
            report = strategies_load_directory(path=path, force=options["force"])
        except ApplicationError as error:
            raise CommandError(error.message) from error
        for result in report.results:
            if result.conflict:
                self.stderr.write(self.style.WARNING(result.summary))
            else:
                self.stdout.write(
                    self.style.SUCCESS(result.summary) if result.created else result.summary
                )
        if report.conflicts:
            raise CommandError(
                f"{len(report.conflicts)} file(s) not loaded: the strategy was edited since the "
                "file was last loaded (see above; --force stores the file as a new version)"
            )

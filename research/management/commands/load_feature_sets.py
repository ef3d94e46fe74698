"""``manage.py load_feature_sets [--path DIR_OR_FILE] [--check]``: sync feature set YAML files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from quant.errors import ApplicationError
from research.feature_store import (
    feature_set_definitions_validate,
    feature_sets_load_directory,
    shipped_feature_sets,
)


class Command(BaseCommand):
    help = (
        "Load feature set definitions (YAML) into the database; each new definition becomes "
        "a version keyed by its hash. Any invalid file rejects the whole load."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--path",
            default=None,
            help="a directory of *.yaml files or one file (default: configs/features)",
        )
        parser.add_argument(
            "--check", action="store_true", help="only validate the files; write nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"]) if options["path"] else shipped_feature_sets()
        try:
            if options["check"]:
                for item in feature_set_definitions_validate(path=path):
                    definition = item.value
                    self.stdout.write(
                        f"{definition.name}: valid, version {definition.version[:12]} ({item.path})"
                    )
                return
            report = feature_sets_load_directory(path=path)
        except ApplicationError as error:
            raise CommandError(error.message) from error
        for result in report.results:
            self.stdout.write(
                self.style.SUCCESS(result.summary) if result.created else result.summary
            )

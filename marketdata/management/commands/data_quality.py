"""``manage.py data_quality [--symbols AAPL,MSFT] [--timeframe 1Day]``: check and store reports."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from marketdata.domain import Timeframe
from marketdata.services import data_quality_run
from quant.errors import ApplicationError


class Command(BaseCommand):
    help = "Check bars for calendar gaps, OHLC breaks, negative volume, duplicates, outliers and staleness."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--symbols", default="", help="comma-separated (default: every instrument)"
        )
        parser.add_argument("--timeframe", default="1Day", help="1Min, 5Min, 15Min, 1Hour or 1Day")

    def handle(self, *args: Any, **options: Any) -> None:
        symbols = [s for s in options["symbols"].split(",") if s.strip()] or None
        try:
            reports = data_quality_run(
                symbols=symbols, timeframe=Timeframe.parse(options["timeframe"])
            )
        except ApplicationError as error:
            raise CommandError(error.message) from error
        if not reports:
            self.stdout.write("No instruments to check.")
            return
        self.stdout.write(f"{'SYMBOL':<10} {'BARS':>8}  {'STATUS':<8} ISSUES")
        for report in reports:
            issues = (
                ", ".join(f"{check} {n}" for check, n in sorted(report.issue_counts.items())) or "-"
            )
            style = {"OK": self.style.SUCCESS, "WARNING": self.style.WARNING}.get(
                report.status, self.style.ERROR
            )
            self.stdout.write(
                f"{report.instrument.symbol:<10} {report.bar_count:>8}  {style(f'{report.status:<8}')} {issues}"
            )

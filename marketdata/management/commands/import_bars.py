"""``manage.py import_bars FILE --symbol SYM [--timeframe 1Day] [--round]``: CSV or Parquet,
all or nothing. Values with more decimals than the database keeps are refused unless
``--round`` is given; then they are rounded half-even and the output counts them."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from marketdata.domain import Timeframe
from marketdata.imports import bars_import_file
from quant.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Import bars of one symbol from a CSV or Parquet file (columns timestamp, open, high, low, "
        "close, volume[, vwap, trade_count]). A file with any bad row is rejected whole, as are "
        "bars that have not closed yet."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", help="path to a .csv or .parquet file")
        parser.add_argument("--symbol", required=True)
        parser.add_argument("--timeframe", default="1Day", help="1Min, 5Min, 15Min, 1Hour or 1Day")
        parser.add_argument(
            "--round",
            action="store_true",
            help="round values with more decimals than stored (prices 6, volume 8) half-even, "
            "and report how many, instead of refusing the file",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            timeframe = Timeframe.parse(options["timeframe"])
            result = bars_import_file(
                path=options["file"],
                symbol=options["symbol"],
                timeframe=timeframe,
                round_excess=options["round"],
            )
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(
            self.style.SUCCESS(
                f"{options['file']}: {result.inserted} bars inserted, {result.updated} updated, "
                f"{result.unchanged} unchanged ({options['symbol'].upper()} {timeframe})"
            )
        )
        if result.rounded:
            self.stdout.write(self.style.WARNING(f"{options['file']}: {result.rounded_summary()}"))

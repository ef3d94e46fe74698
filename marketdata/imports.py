"""Import a file of bars: validate all of it, then store it in one transaction.

The file is read twice as a stream, never whole: a first pass checks every row and names
every problem (nothing is written), a second pass stores the bars in chunks of
``CHUNK_BARS`` inside one transaction, checking them again (a file changed in between is
refused and the transaction rolled back). So memory does not grow with the file, and a
rejected file leaves the database as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from marketdata import services
from marketdata.domain import Timeframe
from marketdata.providers.files import LIMITS, BarFile
from marketdata.storage import UpsertResult
from quant.clock import Clock, SystemClock

CHUNK_BARS = 5_000
ORDER = ("open", "high", "low", "close", "volume", "vwap")


@dataclass(frozen=True)
class FileImportResult(UpsertResult):
    """What the import stored, and which values it rounded (``round_excess`` only)."""

    rounded: tuple[tuple[str, int, int], ...] = ()  # (column, values, decimals kept)

    @property
    def rounded_total(self) -> int:
        return sum(count for _, count, _ in self.rounded)

    def rounded_summary(self) -> str:
        """``"3 values rounded: vwap 2 to 6 decimals, volume 1 to 8 decimals"``, or ``""``."""
        if not self.rounded:
            return ""
        parts = ", ".join(
            f"{column} {count:,} to {places} decimals" for column, count, places in self.rounded
        )
        total = self.rounded_total
        return f"{total:,} value{'s' if total != 1 else ''} rounded: {parts}"


def bars_import_file(
    *,
    path: Path | str,
    symbol: str,
    timeframe: Timeframe,
    clock: Clock | None = None,
    round_excess: bool = False,
) -> FileImportResult:
    """All rows of the file or none: a rejected file raises before anything is written (or,
    when it changes while it is stored, with everything rolled back).

    Bars that have not closed at ``clock.now()`` are refused. Values with more decimals than
    their column keeps are refused, or with ``round_excess`` rounded half-even and counted.
    """
    (symbol,) = services.normalize_symbols([symbol])
    source = BarFile(
        path,
        symbol=symbol,
        timeframe=timeframe,
        now=(clock or SystemClock()).now(),
        round_excess=round_excess,
    )
    if source.scan() == 0:
        return FileImportResult()
    stored = services.bars_ingest_chunks(
        symbol=symbol, timeframe=timeframe, chunks=source.chunks(CHUNK_BARS), source="file"
    )
    places = {"volume": LIMITS.volume.places}
    rounded = tuple(
        (column, count, places.get(column, LIMITS.price.places))
        for column, count in sorted(source.rounded.items(), key=lambda item: ORDER.index(item[0]))
    )
    return FileImportResult(stored.inserted, stored.updated, stored.unchanged, rounded=rounded)

"""Import a file of bars: validate all of it, then store it in one transaction."""

from __future__ import annotations

from pathlib import Path

from marketdata import services
from marketdata.domain import Timeframe
from marketdata.providers.files import read_bar_file
from marketdata.storage import UpsertResult


def bars_import_file(*, path: Path | str, symbol: str, timeframe: Timeframe) -> UpsertResult:
    """All rows of the file or none: a rejected file raises before anything is written."""
    (symbol,) = services.normalize_symbols([symbol])
    bars = read_bar_file(path, symbol=symbol, timeframe=timeframe)
    if not bars:
        return UpsertResult()
    return services.bars_ingest(symbol=symbol, timeframe=timeframe, bars=bars, source="file")

"""Last prices: the newest close per symbol over every stored timeframe, by hand-written SQL
(one index lookup per instrument and timeframe however many bars are stored), prepared once
per connection. The risk gateway sends the same select inside its book statement."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection

from common.db import prepared
from common.db.columns import Columns
from marketdata.domain import Timeframe
from marketdata.models import Bar, Instrument

TIMEFRAMES = sorted(t.value for t in Timeframe)  # by name: the tie-break of last prices
LAST_BAR = Columns(Bar, "ts", "close")


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def last_bars_select(where: str) -> str:
    """Per instrument matching ``where`` (on ``i``) and per timeframe: the newest bar's ts and
    close, each an index lookup on (instrument, timeframe, ts) however many bars are stored.
    Columns: symbol, timeframe, ts, close."""
    instrument = _q(Instrument._meta.db_table)
    timeframes = " UNION ALL ".join(f"SELECT '{tf}' AS tf" for tf in TIMEFRAMES)
    newest = (
        f"FROM {LAST_BAR.table} b WHERE {LAST_BAR.column('instrument', 'b')} = i.{_q('id')} "
        f"AND {LAST_BAR.column('timeframe', 'b')} = t.tf "
        f"ORDER BY {LAST_BAR.column('ts', 'b')} DESC LIMIT 1"
    )
    symbol, ts, close = _q("symbol"), _q("ts"), _q("close")
    return (
        f"SELECT i.{symbol} AS {symbol}, t.tf AS tf, "
        f"(SELECT {LAST_BAR.column('ts', 'b')} {newest}) AS {ts}, "
        f"(SELECT {LAST_BAR.column('close', 'b')} {newest}) AS {close} "
        f"FROM {instrument} i CROSS JOIN ({timeframes}) t WHERE {where}"
    )


class NewestClose:
    """Folds (symbol, timeframe, ts, close) rows into the newest close per symbol (ties: the
    first timeframe by name)."""

    def __init__(self) -> None:
        self._best: dict[str, tuple[datetime, str, Decimal]] = {}

    def add(self, symbol: str, timeframe: str, ts: Any, close: Any) -> None:
        if ts is None:
            return
        ts, close = LAST_BAR.values((ts, close))
        best = self._best.get(symbol)
        if best is None or ts > best[0] or (ts == best[0] and timeframe < best[1]):
            self._best[symbol] = (ts, timeframe, close)

    def prices(self) -> dict[str, Decimal]:
        return {symbol: close for symbol, (_, _, close) in self._best.items()}


@functools.cache
def _last_prices_sql(vendor: str, symbols: int) -> str:
    return last_bars_select(f"i.{_q('symbol')} IN ({', '.join(['%s'] * symbols)})")


def last_prices(symbols: Iterable[str]) -> dict[str, Decimal]:
    """The newest close per symbol over every timeframe (ties: the first timeframe by name)."""
    wanted = sorted(set(symbols))
    if not wanted:
        return {}
    newest = NewestClose()
    with connection.cursor() as cursor:
        prepared.execute(cursor, _last_prices_sql(connection.vendor, len(wanted)), wanted)
        for row in cursor.fetchall():
            newest.add(*row)
    return newest.prices()

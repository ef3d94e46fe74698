"""Bars from CSV or Parquet files, validated as a whole before anything is stored.

Columns (case-insensitive): ``timestamp`` (or ``ts``, ``t``, ``date``, ``datetime``, ``time``),
``open``, ``high``, ``low``, ``close``, ``volume``; optional ``vwap`` and ``trade_count``
(or ``trades``, ``n``). Timestamps are ISO dates or datetimes; naive ones are UTC. Daily bars
take the exchange-local session date (stamped 00:00 UTC, as every daily bar here).

CSV numbers are read as text straight into ``Decimal`` (never through float). Every problem
is reported with the file, the line (the header is line 1) and the column; a file with any
problem is rejected whole.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from marketdata.domain import BarRecord, Timeframe, bar_problems, daily_ts
from marketdata.providers.base import DataProvider
from quant.calendar import day_start
from quant.clock import ensure_utc
from quant.errors import ValidationError

ALIASES: dict[str, str] = {
    "timestamp": "timestamp",
    "ts": "timestamp",
    "t": "timestamp",
    "date": "timestamp",
    "datetime": "timestamp",
    "time": "timestamp",
    "open": "open",
    "o": "open",
    "high": "high",
    "h": "high",
    "low": "low",
    "l": "low",
    "close": "close",
    "c": "close",
    "volume": "volume",
    "v": "volume",
    "vwap": "vwap",
    "vw": "vwap",
    "trade_count": "trade_count",
    "trades": "trade_count",
    "n": "trade_count",
}
REQUIRED = ("timestamp", "open", "high", "low", "close", "volume")
MAX_REPORTED = 20


@dataclass(frozen=True)
class Problem:
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, column '{self.column}': {self.message}"


class FileRejected(ValidationError):
    """A bar file with problems; ``problems`` lists (up to MAX_REPORTED of) them."""

    def __init__(self, path: Path, problems: Sequence[Problem], total: int) -> None:
        shown = "\n".join(f"  {p}" for p in problems[:MAX_REPORTED])
        more = f"\n  ... and {total - MAX_REPORTED} more" if total > MAX_REPORTED else ""
        super().__init__(
            f"{path}: rejected, nothing was imported ({total} problem{'s' if total != 1 else ''}):\n{shown}{more}",
            details={
                "file": str(path),
                "total": total,
                "problems": [p.__dict__ for p in problems[:MAX_REPORTED]],
            },
        )
        self.problems = list(problems)
        self.total = total


def read_bar_file(path: Path | str, *, symbol: str, timeframe: Timeframe) -> list[BarRecord]:
    """Every bar of the file in time order, or ``FileRejected`` naming each problem."""
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        headers, rows = _csv_rows(path)
    elif suffix in (".parquet", ".pq"):
        headers, rows = _parquet_rows(path)
    else:
        raise ValidationError(
            f"{path}: unsupported file type {suffix or '(none)'}: use .csv or .parquet"
        )
    columns = _map_columns(path, headers)
    parser = _RowParser(symbol=symbol, timeframe=timeframe)
    for line, raw in rows:
        parser.add(line, {name: raw.get(header) for name, header in columns.items()})
    if parser.total:
        raise FileRejected(path, parser.problems, parser.total)
    return parser.bars


class FileProvider(DataProvider):
    """A ``DataProvider`` over one file of one symbol's bars."""

    name = "file"

    def __init__(self, path: Path | str, *, symbol: str, timeframe: Timeframe) -> None:
        self.path, self.symbol, self.timeframe = Path(path), symbol.upper(), timeframe

    def get_bars(
        self, symbol: str, start: datetime, end: datetime, timeframe: Timeframe
    ) -> list[BarRecord]:
        if symbol.upper() != self.symbol or timeframe is not self.timeframe:
            return []
        start, end = ensure_utc(start), ensure_utc(end)
        return [
            b
            for b in read_bar_file(self.path, symbol=self.symbol, timeframe=timeframe)
            if start <= b.ts <= end
        ]


def _csv_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, Mapping[str, Any]]]]:
    handle = path.open(newline="", encoding="utf-8-sig")
    reader = csv.reader(handle)
    try:
        headers = next(reader)
    except StopIteration:
        handle.close()
        raise ValidationError(f"{path}: the file is empty (expected a header line)") from None

    def rows() -> Iterator[tuple[int, Mapping[str, Any]]]:
        with handle:
            for values in reader:
                if not any(v.strip() for v in values):
                    continue  # blank line
                yield reader.line_num, dict(zip(headers, values, strict=False))

    return headers, rows()


def _parquet_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, Mapping[str, Any]]]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as error:
        raise ValidationError(f"{path}: not a readable Parquet file: {error}") from error

    def rows() -> Iterator[tuple[int, Mapping[str, Any]]]:
        for batch in table.to_batches(max_chunksize=50_000):
            for offset, row in enumerate(batch.to_pylist()):
                yield offset + 2, row  # numbered like a CSV with a header: first row is line 2

    return list(table.column_names), rows()


def _map_columns(path: Path, headers: Sequence[str]) -> dict[str, str]:
    columns: dict[str, str] = {}
    for header in headers:
        name = ALIASES.get(str(header).strip().lower())
        if name is not None and name not in columns:
            columns[name] = header
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        problems = [
            Problem(1, name, f"required column is missing (found: {', '.join(headers)})")
            for name in missing
        ]
        raise FileRejected(path, problems, len(problems))
    return columns


class _RowParser:
    def __init__(self, *, symbol: str, timeframe: Timeframe) -> None:
        self.symbol, self.timeframe = symbol, timeframe
        self.bars: list[BarRecord] = []
        self.problems: list[Problem] = []
        self.total = 0
        self._seen: dict[datetime, int] = {}
        self._last: tuple[datetime, int] | None = None

    def problem(self, line: int, column: str, message: str) -> None:
        self.total += 1
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(Problem(line, column, message))

    def add(self, line: int, row: Mapping[str, Any]) -> None:
        before = self.total
        ts = self._timestamp(line, row.get("timestamp"))
        o, h, lo, c, v = (
            self._decimal(line, name, row.get(name), required=True)
            for name in ("open", "high", "low", "close", "volume")
        )
        vwap = self._decimal(line, "vwap", row.get("vwap"), required=False)
        trades = self._integer(line, row.get("trade_count"))
        if ts is None or o is None or h is None or lo is None or c is None or v is None:
            return
        bar = BarRecord(
            self.symbol,
            self.timeframe,
            ts,
            o,
            h,
            lo,
            c,
            v,
            vwap=vwap,
            trade_count=trades,
            source="file",
        )
        for text in bar_problems(bar):
            column, _, message = text.partition(": ")
            self.problem(line, column, message)
        if ts in self._seen:
            self.problem(
                line,
                "timestamp",
                f"duplicate timestamp {ts.isoformat()} (also on line {self._seen[ts]})",
            )
            return
        self._seen[ts] = line
        if self._last is not None and ts < self._last[0]:
            self.problem(
                line,
                "timestamp",
                f"not sorted: {ts.isoformat()} comes after {self._last[0].isoformat()} (line {self._last[1]})",
            )
        self._last = (ts, line)
        if self.total == before:
            self.bars.append(bar)

    def _decimal(self, line: int, column: str, raw: Any, *, required: bool) -> Decimal | None:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if required:
                self.problem(line, column, "value is missing")
            return None
        try:
            value = Decimal(raw.strip()) if isinstance(raw, str) else Decimal(str(raw))
        except (InvalidOperation, ValueError):
            self.problem(line, column, f"not a number: {raw!r}")
            return None
        if not value.is_finite():
            self.problem(line, column, f"not a finite number: {raw!r}")
            return None
        return value

    def _integer(self, line: int, raw: Any) -> int | None:
        value = self._decimal(line, "trade_count", raw, required=False)
        if value is None:
            return None
        if value != value.to_integral_value():
            self.problem(line, "trade_count", f"not a whole number: {raw!r}")
            return None
        return int(value)

    def _timestamp(self, line: int, raw: Any) -> datetime | None:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            self.problem(line, "timestamp", "value is missing")
            return None
        moment: datetime | date
        if isinstance(raw, datetime | date):
            moment = raw
        else:
            text = str(raw).strip()
            try:
                moment = (
                    date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
                )
            except ValueError:
                self.problem(line, "timestamp", f"not an ISO date or datetime: {raw!r}")
                return None
        if not isinstance(moment, datetime):
            if self.timeframe.is_intraday:
                self.problem(
                    line, "timestamp", f"a date without a time for {self.timeframe} bars: {raw!r}"
                )
                return None
            return day_start(moment)
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
        if self.timeframe is Timeframe.DAY_1 and moment.time() != time(0):
            return daily_ts(moment)  # a vendor's session timestamp: its exchange-local date
        return moment

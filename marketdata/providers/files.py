"""Bars from CSV or Parquet files, validated as a whole before anything is stored.

Columns (case-insensitive): ``timestamp`` (or ``ts``, ``t``, ``date``, ``datetime``, ``time``),
``open``, ``high``, ``low``, ``close``, ``volume``; optional ``vwap`` and ``trade_count``
(or ``trades``, ``n``). Timestamps are ISO dates or datetimes; naive ones are UTC. Daily bars
take the exchange-local session date (stamped 00:00 UTC, as every daily bar here).

CSV numbers are read as text straight into ``Decimal`` (never through float). Every problem
is reported with the file, the line (the header is line 1) and the column; a file with any
problem is rejected whole.

The file is read as a stream, one line (CSV) or one batch of rows (Parquet) at a time, so
memory does not grow with its size: ``BarFile.scan`` checks all of it, ``BarFile.chunks``
reads it again in blocks for storing. What is refused, beyond unparsable values:

- a line over ``MAX_LINE_BYTES`` or a value over ``MAX_VALUE_CHARS`` characters, bytes that are
  not UTF-8, a quoted value that does not close on its line, a stray carriage return;
- numbers in any other form than plain ASCII decimals (``1_000``, non-ASCII digits), ``inf``
  and ``nan``, and numbers the stored column cannot hold: more digits before the decimal point
  than it has (``LIMITS``), or more decimals than it keeps, unless ``round_excess`` is set,
  when they are rounded half-even and counted (``BarFile.rounded``);
- timestamps before 1970 or after 2100, offsets outside -12:00..+14:00 (the world's), and
  bars that have not closed at ``now`` (the injected clock): an intraday bar closes at its
  start plus its duration, a daily bar at its exchange session's close.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from marketdata.domain import BarRecord, Timeframe, bar_problems, daily_ts
from marketdata.providers.base import DataProvider
from quant.calendar import MarketCalendar, day_start
from quant.clock import Clock, SystemClock, ensure_utc
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
FIELDS = (*REQUIRED, "vwap", "trade_count")  # the order a row is read in
MAX_REPORTED = 20
MAX_LINE_BYTES = 64 * 1024  # below the csv module's field limit (131,072): no line can reach it
MAX_VALUE_CHARS = 100
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
END = datetime(2101, 1, 1, tzinfo=UTC)  # exclusive: bars of 1970 to 2100
MIN_OFFSET, MAX_OFFSET = timedelta(hours=-12), timedelta(hours=14)
EXCHANGE_TZ = ZoneInfo("America/New_York")  # as ``daily_ts``
PARQUET_BATCH_ROWS = 10_000
NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
NON_FINITE = {"inf", "infinity", "nan", "snan"}
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Column:
    """What a stored numeric column holds: ``digits`` in all, ``places`` of them decimals."""

    digits: int
    places: int

    @property
    def step(self) -> Decimal:
        return Decimal(1).scaleb(-self.places)

    @property
    def integer_digits(self) -> int:
        return self.digits - self.places


@dataclass(frozen=True)
class Limits:
    price: Column = Column(18, 6)
    volume: Column = Column(24, 8)
    max_trade_count: int = 2**63 - 1  # bigint


LIMITS = Limits()  # the Bar table's columns (marketdata.models.PRICE / VOLUME; a test checks)


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


def read_bar_file(
    path: Path | str,
    *,
    symbol: str,
    timeframe: Timeframe,
    now: datetime | None = None,
    round_excess: bool = False,
) -> list[BarRecord]:
    """Every bar of the file in time order, or ``FileRejected`` naming each problem."""
    return list(
        BarFile(path, symbol=symbol, timeframe=timeframe, now=now, round_excess=round_excess).bars()
    )


def last_closed_bar_start(
    timeframe: Timeframe, now: datetime, *, exchange: str = "XNYS"
) -> datetime:
    """The start of the newest bar of ``timeframe`` that has closed at ``now``.

    An intraday bar closes at its start plus its duration. A daily bar (stamped 00:00 UTC of
    its exchange-local date) closes at that session's close; on a day without a session, or
    beyond the calendar's range, only at the end of the local day.
    """
    now = ensure_utc(now)
    if timeframe.is_intraday:
        return now - timeframe.duration
    today = now.astimezone(EXCHANGE_TZ).date()
    try:
        calendar = MarketCalendar(exchange)
        closed = calendar.is_session(today) and calendar.session_close(today) <= now
    except Exception:  # a date outside the calendar's range: the day ends at midnight
        closed = False
    return day_start(today if closed else today - timedelta(days=1))


class BarFile:
    """One CSV or Parquet file of one symbol's bars, read as a stream.

    ``bars()`` yields the sound bars in file order while no problem has been met and raises
    ``FileRejected`` at the end when any was (naming up to ``MAX_REPORTED`` of them); so a
    caller storing what it yields must do so in a transaction it rolls back on the error.
    ``scan()`` reads all of the file and keeps nothing; ``chunks()`` reads it again in blocks.
    A file that changes between the first read and the end of a later one is refused.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        symbol: str,
        timeframe: Timeframe,
        now: datetime | None = None,
        round_excess: bool = False,
        limits: Limits = LIMITS,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ValidationError(f"{self.path}: no such file")
        suffix = self.path.suffix.lower()
        if suffix not in (".csv", ".parquet", ".pq"):
            raise ValidationError(
                f"{self.path}: unsupported file type {suffix or '(none)'}: use .csv or .parquet"
            )
        self.symbol, self.timeframe = symbol, timeframe
        self.now = ensure_utc(now) if now is not None else datetime.now(UTC)
        self.latest = last_closed_bar_start(timeframe, self.now)
        self.round_excess, self.limits = round_excess, limits
        self.rounded: dict[str, int] = {}  # column -> values rounded, after a complete read
        self._stamp = self._stat()

    def _stat(self) -> tuple[int, int]:
        stat = os.stat(self.path)
        return stat.st_size, stat.st_mtime_ns

    def bars(self) -> Iterator[BarRecord]:
        parser = _RowParser(
            symbol=self.symbol,
            timeframe=self.timeframe,
            now=self.now,
            latest=self.latest,
            round_excess=self.round_excess,
            limits=self.limits,
        )
        if self.path.suffix.lower() == ".csv":
            headers, row_headers, rows, close = _csv_rows(self.path, parser)
        else:
            headers, row_headers, rows, close = _parquet_rows(self.path, parser)
        try:
            columns = _map_columns(self.path, headers)
            parser.bind({name: row_headers.index(header) for name, header in columns.items()})
            for line, values in rows:
                bar = parser.add(line, values)
                if bar is not None and not parser.total:
                    yield bar
        except _Stop:
            pass
        finally:
            rows.close()
            close()
        if parser.total:
            raise FileRejected(self.path, parser.problems, parser.total)
        if self._stat() != self._stamp:
            raise ValidationError(
                f"{self.path}: rejected, nothing was imported: the file changed while it was read"
            )
        self.rounded = dict(parser.rounded)

    def scan(self) -> int:
        """Check all of the file (``FileRejected`` naming its problems); the number of bars."""
        return sum(1 for _ in self.bars())

    def chunks(self, size: int) -> Iterator[list[BarRecord]]:
        """The bars again, in lists of at most ``size``."""
        chunk: list[BarRecord] = []
        for bar in self.bars():
            chunk.append(bar)
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


class FileProvider(DataProvider):
    """A ``DataProvider`` over one file of one symbol's bars."""

    name = "file"

    def __init__(
        self,
        path: Path | str,
        *,
        symbol: str,
        timeframe: Timeframe,
        clock: Clock | None = None,
    ) -> None:
        self.path, self.symbol, self.timeframe = Path(path), symbol.upper(), timeframe
        self.clock = clock or SystemClock()

    def get_bars(
        self, symbol: str, start: datetime, end: datetime, timeframe: Timeframe
    ) -> list[BarRecord]:
        if symbol.upper() != self.symbol or timeframe is not self.timeframe:
            return []
        start, end = ensure_utc(start), ensure_utc(end)
        source = BarFile(
            self.path,
            symbol=self.symbol,
            timeframe=timeframe,
            now=self.clock.now(),
        )
        return [b for b in source.bars() if start <= b.ts <= end]


class _Stop(Exception):
    """A problem after which the rest of the file cannot be read."""


_Rows = Generator[tuple[int, Sequence[Any]], None, None]  # values in the order of row headers


def _column_name(headers: Sequence[str], index: int) -> str:
    """The column at ``index`` of a line, by its canonical name when it has one."""
    if index >= len(headers):
        return f"#{index + 1}"
    header = str(headers[index])
    return ALIASES.get(header.strip().lower(), header.strip()[:MAX_VALUE_CHARS])


def _field_index(prefix: str) -> int:
    """Which field of a CSV line the end of ``prefix`` falls in (0-based; quotes respected)."""
    if '"' not in prefix:
        return prefix.count(",")
    index, quoted = 0, False
    for char in prefix:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            index += 1
    return index


def _physical_lines(handle: IO[bytes]) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, its bytes without the line end, whether it fit in MAX_LINE_BYTES); the
    rest of an overlong line is skipped without being held in memory."""
    number = 0
    while True:
        raw = handle.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            rest = raw
            while rest and not rest.endswith(b"\n"):
                rest = handle.readline(1 << 20)
            yield number, raw[:MAX_LINE_BYTES], False
            continue
        yield number, raw.rstrip(b"\r\n"), True


def _split_line(
    number: int, raw: bytes, whole: bool, headers: Sequence[str]
) -> list[str] | Problem:
    """The fields of one CSV line, or the problem that makes it unreadable."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        index = _field_index(raw[: error.start].decode("utf-8"))
        return Problem(
            number,
            _column_name(headers, index),
            f"not UTF-8 text: byte 0x{raw[error.start]:02x} at byte {error.start + 1} of the line",
        )
    if not whole:
        return Problem(
            number,
            _column_name(headers, _field_index(text)),
            f"the line is longer than {MAX_LINE_BYTES:,} bytes: not a line of bars",
        )
    if '"' not in text and "\r" not in text:
        return text.split(",")  # the common case, as the csv module would split it
    try:
        values = next(csv.reader((text + "\n",)))
    except csv.Error as error:
        stray = min((i for i in (text.find("\r"), text.find("\n")) if i >= 0), default=len(text))
        return Problem(
            number, _column_name(headers, _field_index(text[:stray])), f"malformed CSV: {error}"
        )
    except StopIteration:
        return []
    for index, value in enumerate(values):
        if value.endswith("\n"):
            return Problem(
                number,
                _column_name(headers, index),
                "a quoted value is not closed on its line (values may not span lines)",
            )
    return values


def _csv_rows(
    path: Path, parser: _RowParser
) -> tuple[list[str], list[str], _Rows, Callable[[], None]]:
    handle = path.open("rb")
    lines = _physical_lines(handle)
    try:
        number, raw, whole = next(lines)
    except StopIteration:
        handle.close()
        raise ValidationError(f"{path}: the file is empty (expected a header line)") from None
    header = _split_line(number, raw.removeprefix(BOM), whole, [])
    if isinstance(header, Problem):
        handle.close()
        raise FileRejected(path, [header], 1)
    headers = header

    def rows() -> _Rows:
        for number, raw, whole in lines:
            values = _split_line(number, raw, whole, headers)
            if isinstance(values, Problem):
                parser.problem(values.line, values.column, values.message)
                continue
            if not any(v.strip() for v in values):
                continue  # blank line
            yield number, values

    return headers, headers, rows(), handle.close


def _parquet_rows(
    path: Path, parser: _RowParser
) -> tuple[list[str], list[str], _Rows, Callable[[], None]]:
    import pyarrow.parquet as pq

    try:
        source = pq.ParquetFile(path)
        headers = list(source.schema_arrow.names)
    except Exception as error:
        raise ValidationError(f"{path}: not a readable Parquet file: {error}") from error
    wanted = [h for h in headers if str(h).strip().lower() in ALIASES]

    def rows() -> _Rows:
        line = 2  # numbered like a CSV with a header: the first row is line 2
        try:
            batches = source.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=wanted)
            for batch in batches:
                try:
                    values = zip(*(batch.column(name).to_pylist() for name in wanted), strict=True)
                except Exception as error:
                    for name in wanted:
                        try:
                            batch.column(name).to_pylist()
                        except Exception as column_error:
                            parser.problem(
                                line,
                                _column_name([name], 0),
                                f"unreadable values in rows {line}..{line + batch.num_rows - 1}:"
                                f" {column_error}",
                            )
                            break
                    else:
                        parser.problem(line, "(row)", f"unreadable rows: {error}")
                    line += batch.num_rows
                    continue
                for row in values:
                    yield line, row
                    line += 1
        except Exception as error:
            parser.problem(line, "(file)", f"not a readable Parquet file from here: {error}")
            raise _Stop from error

    return headers, wanted, rows(), source.close


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
    def __init__(
        self,
        *,
        symbol: str,
        timeframe: Timeframe,
        now: datetime,
        latest: datetime,
        round_excess: bool,
        limits: Limits,
    ) -> None:
        self.symbol, self.timeframe = symbol, timeframe
        self.now, self.latest = now, latest
        self.round_excess, self.limits = round_excess, limits
        self.problems: list[Problem] = []
        self.total = 0
        self.rounded: dict[str, int] = {}
        self._last: tuple[datetime, int] | None = None
        self._at: tuple[int, ...] = ()
        self._price = (limits.price.integer_digits, limits.price.step, limits.price.places)
        self._volume = (limits.volume.integer_digits, limits.volume.step, limits.volume.places)

    def bind(self, columns: Mapping[str, int]) -> None:
        """Where each column is in a row (as ``add`` gets it); -1 for an absent one."""
        self._at = tuple(columns.get(name, -1) for name in FIELDS)

    def problem(self, line: int, column: str, message: str) -> None:
        self.total += 1
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(Problem(line, column, message))

    def add(self, line: int, values: Sequence[Any]) -> BarRecord | None:
        """The row's bar when it is sound; its problems are recorded either way."""
        before, n = self.total, len(values)
        raw_ts, raw_o, raw_h, raw_l, raw_c, raw_v, raw_vwap, raw_n = (
            values[i] if 0 <= i < n else None for i in self._at
        )
        price = self._price
        ts = self._timestamp(line, raw_ts)  # each call records its column's problems
        o = self._decimal(line, "open", raw_o, price, True)
        h = self._decimal(line, "high", raw_h, price, True)
        lo = self._decimal(line, "low", raw_l, price, True)
        c = self._decimal(line, "close", raw_c, price, True)
        v = self._decimal(line, "volume", raw_v, self._volume, True)
        vwap = self._decimal(line, "vwap", raw_vwap, price, False)
        trades = self._integer(line, raw_n)
        if ts is None or o is None or h is None or lo is None or c is None or v is None:
            return None
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
        sound = (  # every value is finite here: the common case skips the full check
            0 < lo <= o <= h
            and lo <= c <= h
            and v >= 0
            and (vwap is None or vwap > 0)
            and (trades is None or trades >= 0)
        )
        if not sound:
            for text in bar_problems(bar):
                column, _, message = text.partition(": ")
                self.problem(line, column, message)
        # Sorted rows put a duplicate next to its twin: one timestamp kept, not all of them.
        last = self._last
        if last is not None and ts <= last[0]:
            if ts == last[0]:
                self.problem(
                    line,
                    "timestamp",
                    f"duplicate timestamp {ts.isoformat()} (also on line {last[1]})",
                )
                return None
            self.problem(
                line,
                "timestamp",
                f"not sorted: {ts.isoformat()} comes after {last[0].isoformat()} (line {last[1]})",
            )
        self._last = (ts, line)
        return bar if self.total == before else None

    def _number(self, line: int, column: str, raw: Any, *, required: bool) -> Decimal | None:
        if type(raw) is str and len(raw) <= MAX_VALUE_CHARS and NUMBER_RE.fullmatch(raw):
            try:  # the common case: plain text
                return Decimal(raw)
            except InvalidOperation:
                pass
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if required:
                self.problem(line, column, "value is missing")
            return None
        if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
            self.problem(line, column, f"not a number: a {type(raw).__name__}")
            return None
        text = raw.strip() if isinstance(raw, str) else str(raw)
        if len(text) > MAX_VALUE_CHARS:
            self.problem(
                line,
                column,
                f"value is too long ({len(text):,} characters, at most {MAX_VALUE_CHARS})",
            )
            return None
        if not NUMBER_RE.fullmatch(text):
            kind = "a finite number" if text.lower().lstrip("+-") in NON_FINITE else "a number"
            self.problem(line, column, f"not {kind}: {_shown(raw)}")
            return None
        try:
            return Decimal(text)
        except InvalidOperation:  # an exponent beyond what Decimal represents
            self.problem(line, column, f"out of range: {_shown(raw)}")
            return None

    def _decimal(
        self, line: int, column: str, raw: Any, limit: tuple[int, Decimal, int], required: bool
    ) -> Decimal | None:
        value: Decimal | None = None
        if type(raw) is str and len(raw) <= MAX_VALUE_CHARS and NUMBER_RE.fullmatch(raw):
            try:  # the common case: plain text
                value = Decimal(raw)
            except InvalidOperation:
                value = None
        if value is None:
            value = self._number(line, column, raw, required=required)
            if value is None:
                return None
        integer_digits, step, places = limit
        if value and value.adjusted() >= integer_digits:
            self.problem(line, column, _too_large(raw, integer_digits))
            return None
        rounded = value.quantize(step, rounding=ROUND_HALF_EVEN)
        if rounded == value:
            return value
        if not self.round_excess:
            self.problem(
                line,
                column,
                f"{_shown(raw)} has more than {places} decimals, the most the column"
                f" keeps: refused (import_bars --round rounds such values)",
            )
            return None
        if rounded and rounded.adjusted() >= integer_digits:
            self.problem(line, column, _too_large(raw, integer_digits))
            return None
        self.rounded[column] = self.rounded.get(column, 0) + 1
        return rounded

    def _integer(self, line: int, raw: Any) -> int | None:
        value = self._number(line, "trade_count", raw, required=False)
        if value is None:
            return None
        if value != value.to_integral_value():
            self.problem(line, "trade_count", f"not a whole number: {_shown(raw)}")
            return None
        if value.adjusted() > 18 or int(value) > self.limits.max_trade_count:
            self.problem(
                line,
                "trade_count",
                f"{_shown(raw)} is too large: at most {self.limits.max_trade_count:,}",
            )
            return None
        return int(value)

    def _timestamp(self, line: int, raw: Any) -> datetime | None:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            self.problem(line, "timestamp", "value is missing")
            return None
        moment: datetime | date
        if isinstance(raw, datetime | date):
            moment = raw
        elif not isinstance(raw, str):
            self.problem(line, "timestamp", f"not an ISO date or datetime: a {type(raw).__name__}")
            return None
        else:
            text = raw.strip()
            if len(text) > MAX_VALUE_CHARS:
                self.problem(
                    line,
                    "timestamp",
                    f"value is too long ({len(text):,} characters, at most {MAX_VALUE_CHARS})",
                )
                return None
            try:
                moment = (
                    date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
                )
            except ValueError as error:
                if "offset" in str(error):
                    self.problem(line, "timestamp", _offset_message(raw))
                else:
                    self.problem(line, "timestamp", f"not an ISO date or datetime: {_shown(raw)}")
                return None
        ts = self._utc(line, raw, moment)
        if ts is not None and ts > self.latest:
            self.problem(
                line,
                "timestamp",
                f"{ts.isoformat()} is in the future: this {self.timeframe} bar has not closed at"
                f" {self.now.isoformat(timespec='seconds')}"
                f" (the newest closed bar starts at {self.latest.isoformat()})",
            )
            return None
        return ts

    def _utc(self, line: int, raw: Any, moment: datetime | date) -> datetime | None:
        if not isinstance(moment, datetime):
            if self.timeframe.is_intraday:
                self.problem(
                    line,
                    "timestamp",
                    f"a date without a time for {self.timeframe} bars: {_shown(raw)}",
                )
                return None
            if not EARLIEST.date() <= moment < END.date():
                self.problem(line, "timestamp", _out_of_range(raw))
                return None
            return day_start(moment)
        try:
            offset = moment.utcoffset()
            if offset is not None and not MIN_OFFSET <= offset <= MAX_OFFSET:
                self.problem(line, "timestamp", _offset_message(raw))
                return None
            if not EARLIEST.year <= moment.year < END.year:
                self.problem(line, "timestamp", _out_of_range(raw))
                return None
            moment = moment.astimezone(UTC) if offset is not None else moment.replace(tzinfo=UTC)
        except (ValueError, OverflowError, TypeError):
            self.problem(line, "timestamp", _out_of_range(raw))
            return None
        if not EARLIEST <= moment < END:
            self.problem(line, "timestamp", _out_of_range(raw))
            return None
        if self.timeframe is Timeframe.DAY_1 and moment.time() != time(0):
            moment = daily_ts(moment)  # a vendor's session timestamp: its exchange-local date
            if moment < EARLIEST:
                self.problem(line, "timestamp", _out_of_range(raw))
                return None
        return moment


def _shown(raw: Any) -> str:
    """A value as it appears in a message: its repr, cut short."""
    text = repr(raw)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _out_of_range(raw: Any) -> str:
    last = (END - timedelta(days=1)).date()
    return f"{_shown(raw)} is outside the supported range {EARLIEST.date()} to {last}"


def _too_large(raw: Any, integer_digits: int) -> str:
    return (
        f"{_shown(raw)} is too large: the column holds {integer_digits} digits"
        " before the decimal point"
    )


def _offset_message(raw: Any) -> str:
    return f"timezone offset out of range in {_shown(raw)}: offsets run from -12:00 to +14:00"

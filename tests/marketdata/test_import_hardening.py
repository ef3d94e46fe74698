"""The bar importer against hostile and careless files (issue 17): unfinished and out-of-range
timestamps, extreme offsets, overflow, non-UTF-8 bytes, huge fields, precision loss, and
memory that does not grow with the file. Each is refused with ``file, line, column`` and
leaves the database as it was."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.db.models import DecimalField

from marketdata import imports
from marketdata.domain import Timeframe
from marketdata.imports import bars_import_file
from marketdata.models import PRICE, VOLUME, Bar
from marketdata.providers.files import LIMITS, BarFile, FileRejected, read_bar_file
from quant.clock import ManualClock

HEADER = "timestamp,open,high,low,close,volume,vwap,trade_count"
PRICES = ("open", "high", "low", "close", "vwap")
GOOD = "2024-01-02,187.15,188.44,183.885,185.64,82488700,185.1234,1009074"


def write(tmp_path: Path, rows: list[str], *, name: str = "bars.csv", header: str = HEADER) -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def stored() -> list[tuple[object, ...]]:
    return list(
        Bar.objects.order_by("instrument_id", "timeframe", "ts").values_list(
            "instrument__symbol", "timeframe", "ts", "open", "close", "volume", "ingested_at"
        )
    )


@pytest.fixture
def existing(tmp_path: Path) -> list[tuple[object, ...]]:
    """A database holding a few bars already, which no rejected file may touch."""
    bars_import_file(
        path=write(tmp_path, [GOOD], name="existing.csv"), symbol="AAPL", timeframe=Timeframe.DAY_1
    )
    return stored()


def rejected(path: Path, *phrases: str, timeframe: Timeframe = Timeframe.DAY_1) -> FileRejected:
    with pytest.raises(FileRejected) as error:
        bars_import_file(path=path, symbol="AAPL", timeframe=timeframe)
    assert str(path) in error.value.message and "nothing was imported" in error.value.message
    for phrase in phrases:
        assert phrase in error.value.message, error.value.message
    return error.value


# 1. Timestamps in the future or outside a sane range -------------------------------------


@pytest.mark.django_db
def test_a_bar_that_has_not_closed_yet_is_refused(
    tmp_path: Path, existing: list[tuple[object, ...]]
) -> None:
    current = datetime.now(UTC).replace(second=0, microsecond=0)
    path = write(
        tmp_path,
        [
            f"{(current - timedelta(minutes=1)).isoformat()},1,2,0.5,1.5,10,,",
            f"{current.isoformat()},1,2,0.5,1.5,10,,",
        ],
    )
    rejected(path, "line 3, column 'timestamp'", "is in the future", timeframe=Timeframe.MIN_1)
    assert stored() == existing


@pytest.mark.parametrize(
    "ts",
    [
        "2999-01-04",
        "2101-01-03T14:30:00Z",
        "1969-12-31",
        "1900-01-02T00:00:00Z",
        "0001-01-01T00:00:00+01:00",  # overflowed converting to UTC: a traceback
        "9999-12-31T23:59:59-05:00",
        "1970-01-01T00:30:00+05:00",  # 1969 in UTC
    ],
)
@pytest.mark.django_db
def test_timestamps_outside_1970_to_2100_are_refused(
    tmp_path: Path, existing: list[tuple[object, ...]], ts: str
) -> None:
    path = write(tmp_path, [f"{ts},1,2,0.5,1.5,10,,"])
    rejected(path, "line 2, column 'timestamp'", timeframe=Timeframe.MIN_1)
    assert stored() == existing


def test_the_current_bar_is_judged_with_the_injected_clock(tmp_path: Path) -> None:
    minute = write(tmp_path, ["2024-06-03T14:30:00Z,1,2,0.5,1.5,10,,"], name="minute.csv")
    at = datetime(2024, 6, 3, 14, 30, 59, tzinfo=UTC)
    with pytest.raises(FileRejected, match="has not closed at 2024-06-03T14:30:59"):
        read_bar_file(minute, symbol="X", timeframe=Timeframe.MIN_1, now=at)
    assert read_bar_file(
        minute, symbol="X", timeframe=Timeframe.MIN_1, now=at + timedelta(seconds=1)
    )
    # a daily bar closes with its session (Monday 2024-06-03: 16:00 New York = 20:00 UTC)
    day = write(
        tmp_path, ["2024-05-31,1,2,0.5,1.5,10,,", "2024-06-03,1,2,0.5,1.5,10,,"], name="d.csv"
    )
    during = datetime(2024, 6, 3, 19, 59, tzinfo=UTC)
    with pytest.raises(FileRejected, match="line 3, column 'timestamp': 2024-06-03T00:00:00"):
        read_bar_file(day, symbol="X", timeframe=Timeframe.DAY_1, now=during)
    after = read_bar_file(
        day, symbol="X", timeframe=Timeframe.DAY_1, now=during + timedelta(minutes=1)
    )
    assert [b.ts.day for b in after] == [31, 3]


@pytest.mark.django_db
def test_the_import_and_the_command_use_the_platform_clock(tmp_path: Path) -> None:
    path = write(tmp_path, ["2024-06-03T14:30:00Z,1,2,0.5,1.5,10,,"])
    clock = ManualClock(datetime(2024, 6, 3, 14, 30, tzinfo=UTC))
    with pytest.raises(FileRejected, match="is in the future"):
        bars_import_file(path=path, symbol="X", timeframe=Timeframe.MIN_1, clock=clock)
    clock.advance(timedelta(minutes=1))
    assert (
        bars_import_file(path=path, symbol="X", timeframe=Timeframe.MIN_1, clock=clock).inserted
        == 1
    )


# 2. Overflow, non-UTF-8, huge fields, extreme offsets: file, line, column -----------------


@pytest.mark.parametrize(
    ("row", "phrase"),
    [
        ("2024-01-02,1e30,1e30,0.5,1.5,10,,", "line 2, column 'open': '1e30' is too large"),
        ("2024-01-02,1,1000000000000,0.5,1.5,10,,", "column 'high': '1000000000000' is too large"),
        ("2024-01-02,1,2,0.5,1.5,1e17,,", "column 'volume': '1e17' is too large"),
        ("2024-01-02,1,2,0.5,1.5,10,,1e40", "column 'trade_count': '1e40' is too large"),
        ("2024-01-02,1,2,0.5,1.5,10,,9223372036854775808", "column 'trade_count'"),
        ("2024-01-02,1,2,0.5,1.5,10,1e12,", "column 'vwap': '1e12' is too large"),
        ("2024-01-02,1,2,0.5,1.5,1_000,,", "column 'volume': not a number: '1_000'"),
        ("2024-01-02,1,2,0.5,\u0661,10,,", "column 'close': not a number"),
        ("2024-01-02,1,2,0.5,-inf,10,,", "column 'close': not a finite number"),
        ("2024-01-02,1,2,0.5,1.5,NaN,,", "column 'volume': not a finite number"),
        ("2024-01-02,1,2,0.5,1e-99999999999999999999,10,,", "column 'close'"),
        (f"2024-01-02,1,2,0.5,{'9' * 200},10,,", "column 'close': value is too long (200"),
        ("2024-01-02T10:00:00+99:00,1,2,0.5,1.5,10,,", "timezone offset out of range"),
        ("2024-01-02T10:00:00+23:00,1,2,0.5,1.5,10,,", "timezone offset out of range"),
        ("2024-01-02T10:00:00-13:00,1,2,0.5,1.5,10,,", "timezone offset out of range"),
        ('2024-01-02,"1,2,0.5,1.5,10,,', "line 2, column 'open': a quoted value is not closed"),
    ],
)
@pytest.mark.django_db
def test_unstorable_values_are_named_by_line_and_column(
    tmp_path: Path, existing: list[tuple[object, ...]], row: str, phrase: str
) -> None:
    rejected(write(tmp_path, [row]), phrase)
    assert stored() == existing


@pytest.mark.django_db
def test_non_utf8_bytes_are_named_by_line_and_column(
    tmp_path: Path, existing: list[tuple[object, ...]]
) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        f"{HEADER}\n2024-01-03,1,2,0.5,1.5,10,,\n2024-01-04,1,2,0.5,1.5\xff,10,,\n".encode(
            "latin-1"
        )
    )
    rejected(path, "line 3, column 'close': not UTF-8 text: byte 0xff")
    with pytest.raises(CommandError, match=r"line 3, column 'close': not UTF-8"):
        call_command("import_bars", str(path), "--symbol", "AAPL")
    assert stored() == existing


@pytest.mark.django_db
def test_a_10_mb_field_is_refused_without_reading_it_whole(
    tmp_path: Path, existing: list[tuple[object, ...]]
) -> None:
    path = tmp_path / "huge.csv"
    with path.open("w") as handle:
        handle.write(
            f"{HEADER}\n2024-01-03,1,2,0.5,1.5,{'1' * 10_000_000},,\n2024-01-04,1,2,0.5,1.5,10,,\n"
        )
    rejected(path, "line 2, column 'volume': the line is longer than 65,536 bytes")
    with pytest.raises(CommandError, match=r"line 2, column 'volume'"):
        call_command("import_bars", str(path), "--symbol", "AAPL")
    assert stored() == existing


def test_a_parquet_file_gets_the_same_checks_and_true_line_numbers(tmp_path: Path) -> None:
    n = 50_010
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2020-01-01 14:30", periods=n, freq="min", tz="UTC"),
            "open": ["10"] * n,
            "high": ["11"] * n,
            "low": ["9"] * n,
            "close": ["10.5"] * n,
            "volume": ["100"] * n,
        }
    )
    frame.loc[50_005, "volume"] = "1" * 1000
    frame.loc[7, "close"] = "10.1234567"
    frame.loc[9, "timestamp"] = pd.Timestamp("2999-01-01", tz="UTC")
    path = tmp_path / "bars.parquet"
    frame.to_parquet(path)
    with pytest.raises(FileRejected) as error:
        read_bar_file(path, symbol="X", timeframe=Timeframe.MIN_1)
    message = error.value.message
    assert "line 9, column 'close': '10.1234567' has more than 6 decimals" in message
    assert "line 11, column 'timestamp'" in message and "outside the supported range" in message
    assert "line 50007, column 'volume': value is too long (1,000 characters" in message


# 3. Precision loss: refused, or rounded and reported --------------------------------------


@pytest.mark.django_db
def test_more_decimals_than_stored_are_refused_by_default(
    tmp_path: Path, existing: list[tuple[object, ...]]
) -> None:
    path = write(tmp_path, ["2024-01-03,1,2,0.5,1.1234567,10.000000001,1.23456789,"])
    error = rejected(
        path,
        "line 2, column 'close': '1.1234567' has more than 6 decimals",
        "line 2, column 'volume': '10.000000001' has more than 8 decimals",
        "line 2, column 'vwap': '1.23456789' has more than 6 decimals",
    )
    assert error.total == 3
    assert stored() == existing


@pytest.mark.django_db
def test_round_rounds_half_even_and_the_command_reports_how_many(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        [
            "2024-01-03,1,2,0.5,1.1234565,10.000000005,1.23456789,",
            "2024-01-04,1.0000000,2,0.5,1.5,10,1.5,",  # trailing zeros lose nothing
        ],
    )
    call_command("import_bars", str(path), "--symbol", "AAPL", "--round")
    out = capsys.readouterr().out
    assert "2 bars inserted" in out
    assert (
        "3 values rounded: close 1 to 6 decimals, volume 1 to 8 decimals, vwap 1 to 6 decimals"
        in out
    )
    bar = Bar.objects.get(ts=datetime(2024, 1, 3, tzinfo=UTC))
    assert (bar.close, bar.volume, bar.vwap) == (
        Decimal("1.123456"),
        Decimal("10.00000000"),
        Decimal("1.234568"),
    )
    # rounding that would make a price zero is still refused
    tiny = write(tmp_path, ["2024-01-05,1,2,0.0000001,1.5,10,,"], name="tiny.csv")
    with pytest.raises(FileRejected, match="column 'low': price must be a positive number"):
        bars_import_file(path=tiny, symbol="AAPL", timeframe=Timeframe.DAY_1, round_excess=True)


def test_the_limits_are_the_bar_columns() -> None:
    assert (LIMITS.price.digits, LIMITS.price.places) == (
        PRICE["max_digits"],
        PRICE["decimal_places"],
    )
    assert (LIMITS.volume.digits, LIMITS.volume.places) == (
        VOLUME["max_digits"],
        VOLUME["decimal_places"],
    )
    for name, column in [*((n, LIMITS.price) for n in PRICES), ("volume", LIMITS.volume)]:
        field = Bar._meta.get_field(name)
        assert isinstance(field, DecimalField)
        assert (field.max_digits, field.decimal_places) == (column.digits, column.places)


# 4. Bounded memory, all or nothing --------------------------------------------------------


def minute_rows(n: int, start: datetime = datetime(2020, 1, 1, tzinfo=UTC)) -> list[str]:
    return [
        f"{(start + timedelta(minutes=i)).isoformat()},10.00,10.50,9.50,10.25,{100 + i},10.1,7"
        for i in range(n)
    ]


@pytest.mark.django_db
def test_memory_does_not_grow_with_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "CHUNK_BARS", 1_000, raising=False)
    path = write(tmp_path, minute_rows(20_000), name="big.csv")
    tracemalloc.start()
    try:
        result = bars_import_file(path=path, symbol="BIG", timeframe=Timeframe.MIN_1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (
        result.inserted == 20_000 and Bar.objects.filter(instrument__symbol="BIG").count() == 20_000
    )
    # the import that held the whole file peaked at 17 MB of Python allocations here; chunks
    # of 1,000 bars peak under 2 MB, and at that whatever the file's size
    assert peak < 8_000_000, f"peak {peak / 1e6:.1f} MB of Python allocations"


@pytest.mark.django_db
def test_a_file_that_turns_bad_while_it_is_stored_is_rolled_back(
    tmp_path: Path, existing: list[tuple[object, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second pass stores chunks as it reads: a problem it meets undoes all of them."""
    monkeypatch.setattr(imports, "CHUNK_BARS", 500)
    path = write(tmp_path, minute_rows(3_000), name="turns.csv")
    scan = BarFile.scan

    def scan_then_spoil(self: BarFile) -> int:
        count = scan(self)
        with self.path.open("a") as handle:
            handle.write("2020-01-03T02:00:00+00:00,10,10.5,9.5,10.25,-5,,\n")
        return count

    monkeypatch.setattr(BarFile, "scan", scan_then_spoil)
    with pytest.raises(FileRejected, match="line 3002, column 'volume'"):
        bars_import_file(path=path, symbol="AAPL", timeframe=Timeframe.MIN_1)
    assert stored() == existing


@pytest.mark.django_db
def test_a_file_changed_between_the_passes_is_refused(
    tmp_path: Path, existing: list[tuple[object, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, minute_rows(100), name="grows.csv")
    scan = BarFile.scan

    def scan_then_append(self: BarFile) -> int:
        count = scan(self)
        with self.path.open("a") as handle:
            handle.write("2020-01-03T02:00:00+00:00,10,10.5,9.5,10.25,5,,\n")
        return count

    monkeypatch.setattr(BarFile, "scan", scan_then_append)
    with pytest.raises(Exception, match="the file changed while it was read"):
        bars_import_file(path=path, symbol="AAPL", timeframe=Timeframe.MIN_1)
    assert stored() == existing

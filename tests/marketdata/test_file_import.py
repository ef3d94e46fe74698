"""CSV/Parquet import: exact Decimals, idempotent, and a bad file is rejected whole."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from marketdata.domain import Timeframe
from marketdata.imports import bars_import_file
from marketdata.models import Bar
from marketdata.providers.files import FileProvider, FileRejected, read_bar_file
from quant.errors import ValidationError

HEADER = "timestamp,open,high,low,close,volume,vwap,trade_count"
GOOD_ROWS = [
    "2024-01-02,187.15,188.44,183.885,185.64,82488700,185.1234,1009074",
    "2024-01-03,184.22,185.88,183.43,184.25,58414500,184.5,656000",
    "2024-01-04,182.15,183.0872,180.88,181.91,71983600,,",
]


def write(tmp_path: Path, rows: list[str], header: str = HEADER, name: str = "aapl.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def big_file(tmp_path: Path, n: int = 3000, last: str | None = None) -> Path:
    start = datetime(2020, 1, 1, 14, 30, tzinfo=UTC)
    rows = [
        f"{(start + timedelta(minutes=i)).isoformat()},10.00,10.50,9.50,10.25,{100 + i}"
        for i in range(n)
    ]
    if last is not None:
        rows[-1] = last
    return write(tmp_path, rows, header="ts,open,high,low,close,volume", name="big.csv")


def test_parses_csv_exactly_into_decimals(tmp_path: Path) -> None:
    bars = read_bar_file(write(tmp_path, GOOD_ROWS), symbol="AAPL", timeframe=Timeframe.DAY_1)
    assert [b.ts for b in bars] == [datetime(2024, 1, d, tzinfo=UTC) for d in (2, 3, 4)]
    assert bars[0].low == Decimal("183.885") and bars[1].high == Decimal("185.88")
    assert bars[0].vwap == Decimal("185.1234") and bars[0].trade_count == 1009074
    assert bars[2].vwap is None and bars[2].trade_count is None


def test_header_names_are_case_insensitive_with_aliases(tmp_path: Path) -> None:
    path = write(
        tmp_path, ["2024-01-02T14:30:00Z,1,2,0.5,1.5,10"], header="Date,Open,HIGH,low,Close,Volume"
    )
    (bar,) = read_bar_file(path, symbol="X", timeframe=Timeframe.MIN_1)
    assert bar.ts == datetime(2024, 1, 2, 14, 30, tzinfo=UTC) and bar.close == Decimal("1.5")


def test_vendor_daily_timestamps_take_the_session_date(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        ["2024-03-11T04:00:00Z,1,2,0.5,1.5,10", "2024-03-12T00:00:00-04:00,1,2,0.5,1.5,10"],
        header="t,o,h,l,c,v",
    )
    assert [b.ts for b in read_bar_file(path, symbol="X", timeframe=Timeframe.DAY_1)] == [
        datetime(2024, 3, 11, tzinfo=UTC),
        datetime(2024, 3, 12, tzinfo=UTC),
    ]


@pytest.mark.django_db
def test_import_is_idempotent_and_the_command_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD_ROWS)
    first = bars_import_file(path=path, symbol="aapl", timeframe=Timeframe.DAY_1)
    assert (first.inserted, first.updated, first.unchanged) == (3, 0, 0)
    call_command("import_bars", str(path), "--symbol", "AAPL")
    assert "0 bars inserted, 0 updated, 3 unchanged" in capsys.readouterr().out
    stored = Bar.objects.get(instrument__symbol="AAPL", ts=datetime(2024, 1, 2, tzinfo=UTC))
    assert stored.low == Decimal("183.885") and stored.source == "file"


@pytest.mark.django_db
def test_parquet_import(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(["2024-01-02 14:30", "2024-01-02 14:31"], utc=True),
            "open": [10.0, 10.2],
            "high": [10.5, 10.4],
            "low": [9.9, 10.1],
            "close": [10.2, 10.3],
            "volume": [1000, 1200],
        }
    )
    path = tmp_path / "bars.parquet"
    frame.to_parquet(path)
    result = bars_import_file(path=path, symbol="MSFT", timeframe=Timeframe.MIN_1)
    assert result.inserted == 2
    assert Bar.objects.get(ts=datetime(2024, 1, 2, 14, 31, tzinfo=UTC)).close == Decimal("10.3")


@pytest.mark.parametrize(
    ("rows", "header", "expected"),
    [
        (
            GOOD_ROWS,
            "timestamp,open,high,close",
            [
                "line 1, column 'low': required column is missing",
                "line 1, column 'volume': required column is missing",
            ],
        ),
        (
            [GOOD_ROWS[0], "2024-01-03,184.22,abc,183.43,184.25,58414500,,"],
            HEADER,
            ["line 3, column 'high': not a number: 'abc'"],
        ),
        (
            ["2024-13-02,1,2,0.5,1.5,10,,"],
            HEADER,
            ["line 2, column 'timestamp': not an ISO date or datetime"],
        ),
        (
            ["2024-01-02,-1,2,-3,1.5,10,,"],
            HEADER,
            ["line 2, column 'open': price must be a positive number, got -1"],
        ),
        (
            ["2024-01-02,1,2,0.5,1.5,-10,,"],
            HEADER,
            ["line 2, column 'volume': must be zero or more, got -10"],
        ),
        (
            [GOOD_ROWS[0], GOOD_ROWS[1], GOOD_ROWS[1]],
            HEADER,
            [
                "line 4, column 'timestamp': duplicate timestamp 2024-01-03T00:00:00+00:00 (also on line 3)"
            ],
        ),
        ([GOOD_ROWS[1], GOOD_ROWS[0]], HEADER, ["line 3, column 'timestamp': not sorted"]),
        (
            ["2024-01-02,10,9,8,9.5,1,,"],
            HEADER,
            ["line 2, column 'high': 9 is below max(open, close) = 10"],
        ),
        (
            ["2024-01-02,10,11,10.5,10.2,1,,"],
            HEADER,
            ["line 2, column 'low': 10.5 is above min(open, close) = 10"],
        ),
        (["2024-01-02,10,11,9,,1,,"], HEADER, ["line 2, column 'close': value is missing"]),
        (
            ["2024-01-02,10,11,9,10,1,,1.5"],
            HEADER,
            ["line 2, column 'trade_count': not a whole number"],
        ),
    ],
)
@pytest.mark.django_db
def test_a_bad_file_is_rejected_naming_file_line_and_column(
    tmp_path: Path, rows: list[str], header: str, expected: list[str]
) -> None:
    path = write(tmp_path, rows, header=header)
    with pytest.raises(FileRejected) as error:
        bars_import_file(path=path, symbol="AAPL", timeframe=Timeframe.DAY_1)
    assert str(path) in error.value.message and "nothing was imported" in error.value.message
    for phrase in expected:
        assert phrase in error.value.message
    assert Bar.objects.count() == 0


@pytest.mark.django_db
def test_a_bad_last_row_of_a_large_file_keeps_existing_bars_untouched(tmp_path: Path) -> None:
    bars_import_file(path=write(tmp_path, GOOD_ROWS), symbol="AAPL", timeframe=Timeframe.DAY_1)
    before = list(Bar.objects.order_by("ts").values_list("ts", "close", "ingested_at"))
    path = big_file(tmp_path, last="2020-01-03T16:29:00+00:00,10,10.5,9.5,10.25,-5")
    with pytest.raises(FileRejected, match="line 3001, column 'volume'"):
        bars_import_file(path=path, symbol="AAPL", timeframe=Timeframe.MIN_1)
    assert list(Bar.objects.order_by("ts").values_list("ts", "close", "ingested_at")) == before


def test_many_problems_are_counted_and_the_first_ones_listed(tmp_path: Path) -> None:
    rows = [f"2024-01-{d:02d},1,2,0.5,1.5,-1,," for d in range(1, 31)]
    with pytest.raises(FileRejected) as error:
        read_bar_file(write(tmp_path, rows), symbol="X", timeframe=Timeframe.DAY_1)
    assert error.value.total == 30 and len(error.value.problems) == 20
    assert "(30 problems)" in error.value.message and "... and 10 more" in error.value.message


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bars.txt", "x", "unsupported file type .txt"),
        ("empty.csv", "", "the file is empty"),
        ("broken.parquet", "not parquet", "not a readable Parquet file"),
    ],
)
def test_unreadable_files_are_named(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValidationError, match=message):
        read_bar_file(path, symbol="X", timeframe=Timeframe.DAY_1)
    with pytest.raises(ValidationError, match="no such file"):
        read_bar_file(tmp_path / "missing.csv", symbol="X", timeframe=Timeframe.DAY_1)


@pytest.mark.django_db
def test_the_command_fails_with_the_error_and_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, ["2024-01-02,1,2,0.5,1.5,oops,,"])
    with pytest.raises(CommandError, match="line 2, column 'volume': not a number: 'oops'"):
        call_command("import_bars", str(path), "--symbol", "AAPL")
    with pytest.raises(CommandError, match="unknown timeframe"):
        call_command("import_bars", str(path), "--symbol", "AAPL", "--timeframe", "2Day")
    assert Bar.objects.count() == 0


def test_file_provider_serves_a_range(tmp_path: Path) -> None:
    provider = FileProvider(write(tmp_path, GOOD_ROWS), symbol="aapl", timeframe=Timeframe.DAY_1)
    bars = provider.get_bars(
        "AAPL", datetime(2024, 1, 3, tzinfo=UTC), datetime(2024, 1, 10, tzinfo=UTC), Timeframe.DAY_1
    )
    assert [b.ts.day for b in bars] == [3, 4]
    assert (
        provider.get_bars(
            "MSFT",
            datetime(2024, 1, 1, tzinfo=UTC),
            datetime(2024, 2, 1, tzinfo=UTC),
            Timeframe.DAY_1,
        )
        == []
    )

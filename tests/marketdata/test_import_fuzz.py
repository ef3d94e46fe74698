"""Fuzzing the bar importer (issue 17): for arbitrary and mutated CSV bytes, ``import_bars``'
service raises nothing but the platform's ``ValidationError``, leaves the database unchanged
whenever it refuses a file, and stores exactly what the file says when it accepts one.

Bounded and reproducible: ``derandomize`` (the examples follow from the test's code, not a
random seed), no example database, 300 examples (about 10-30 s here).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from marketdata.domain import Timeframe
from marketdata.imports import bars_import_file
from marketdata.models import Bar, Instrument
from marketdata.providers.files import read_bar_file
from quant.clock import ManualClock
from quant.errors import ValidationError

NOW = datetime(2024, 6, 3, 15, 0, tzinfo=UTC)
HEADER = b"timestamp,open,high,low,close,volume,vwap,trade_count\n"
SEEDS = {  # files the importer accepts at NOW, to mutate
    Timeframe.DAY_1: HEADER
    + b"2024-01-02,187.15,188.44,183.885,185.64,82488700,185.1234,1009074\n"
    + b"2024-01-03T14:30:00Z,184.22,185.88,183.43,184.25,58414500,184.5,656000\n"
    + b'2024-01-04,"182.15",183.0872,180.88,181.91,71983600,,\n'
    + b"2024-05-31T20:00:00-04:00,1,2,0.5,1.5,10,1.2,3\n",
    Timeframe.MIN_1: HEADER
    + b"2024-01-02T14:30:00Z,187.15,188.44,183.885,185.64,82488700,185.1234,1009074\n"
    + b"2024-01-02T09:31:00-05:00,184.22,185.88,183.43,184.25,58414500,184.5,656000\n"
    + b'2024-01-02 14:32:00,"182.15",183.0872,180.88,181.91,71983600,,\n'
    + b"2024-06-03T14:59:00+00:00,1,2,0.5,1.5,10,1.2,3\n",
}
TOKENS = [
    b"",
    b"0",
    b"-1",
    b"-0",
    b"1e30",
    b"1e-30",
    b"1e999999999999999999",
    b"inf",
    b"NaN",
    b"sNaN",
    b"1_0",
    b"\xd9\xa1",  # an Arabic-Indic digit
    b"\xff",
    b"\xc3",
    b"\x00",
    b'"',
    b",",
    b"\n",
    b"\r",
    b"\r\n",
    b"\xef\xbb\xbf",
    b"2024-01-02",
    b"2024-06-03",
    b"2999-01-01",
    b"0001-01-01T00:00:00+01:00",
    b"9999-12-31T23:59:59-05:00",
    b"1969-12-31T23:59:59Z",
    b"+99:00",
    b"+23:59",
    b"-12:00",
    b"T14:30:00",
    b"9" * 30,
    b"1.1234567",
    b"0.0000001",
    b"9223372036854775808",
    b"999999999999.9999999",
    b"ts,o,h,l,c,v\n",
    b"x" * 70_000,
]

mutation = st.tuples(
    st.sampled_from(["insert", "replace", "delete", "duplicate_line", "drop_line"]),
    st.floats(min_value=0, max_value=1, allow_nan=False),
    st.integers(min_value=1, max_value=40),
    st.one_of(st.sampled_from(TOKENS), st.binary(max_size=12)),
)


def mutate(data: bytes, steps: list[tuple[str, float, int, bytes]]) -> bytes:
    for kind, where, width, token in steps:
        at = int(where * len(data))
        if kind == "insert":
            data = data[:at] + token + data[at:]
        elif kind == "replace":
            data = data[:at] + token + data[at + width :]
        elif kind == "delete":
            data = data[:at] + data[at + width :]
        else:
            lines = data.split(b"\n")
            index = int(where * (len(lines) - 1))
            if kind == "duplicate_line":
                lines.insert(index, lines[index])
            elif len(lines) > 1:
                del lines[index]
            data = b"\n".join(lines)
    return data


def files(seed: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.just(seed),
        st.lists(mutation, min_size=1, max_size=4).map(lambda steps: mutate(seed, steps)),
        st.binary(max_size=400),
        st.binary(max_size=200).map(lambda tail: HEADER + tail),
    )


def snapshot() -> list[tuple[object, ...]]:
    return [
        *Instrument.objects.order_by("symbol").values_list("symbol", "active"),
        *Bar.objects.order_by("instrument_id", "timeframe", "ts").values_list(
            "instrument_id",
            "timeframe",
            "ts",
            "open",
            "high",
            "low",
            "close",
            "volume",
            "vwap",
            "trade_count",
            "ingested_at",
        ),
    ]


@pytest.mark.django_db
@settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    timeframe=st.sampled_from([Timeframe.DAY_1, Timeframe.MIN_1]),
    round_excess=st.booleans(),
    data=st.data(),
)
def test_the_importer_refuses_cleanly_or_stores_exactly(
    tmp_path: Path, timeframe: Timeframe, round_excess: bool, data: st.DataObject
) -> None:
    content = data.draw(files(SEEDS[timeframe]), label="content")
    if not Bar.objects.exists():  # bars already stored, which no rejected file may touch
        path = tmp_path / "existing.csv"
        path.write_bytes(SEEDS[Timeframe.DAY_1])
        bars_import_file(
            path=path, symbol="FUZZ", timeframe=Timeframe.DAY_1, clock=ManualClock(NOW)
        )
    path = tmp_path / "fuzz.csv"
    path.write_bytes(content)
    before = snapshot()
    try:
        result = bars_import_file(
            path=path,
            symbol="FUZZ",
            timeframe=timeframe,
            clock=ManualClock(NOW),
            round_excess=round_excess,
        )
    except ValidationError:
        event("refused")
        assert snapshot() == before
        return
    event("stored")
    expected = read_bar_file(
        path, symbol="FUZZ", timeframe=timeframe, now=NOW, round_excess=round_excess
    )
    assert result.inserted + result.updated + result.unchanged == len(expected)
    rows = {
        row[0]: row[1:]
        for row in Bar.objects.filter(
            instrument__symbol="FUZZ", timeframe=timeframe.value
        ).values_list("ts", "open", "high", "low", "close", "volume", "vwap", "trade_count")
    }
    for bar in expected:
        assert rows[bar.ts] == (
            bar.open,
            bar.high,
            bar.low,
            bar.close,
            bar.volume,
            bar.vwap,
            bar.trade_count,
        )

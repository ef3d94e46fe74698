"""Bar validation: the fast path agrees with the full check on every bar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketdata.domain import BarRecord, Timeframe, _plainly_sound, bar_problems, validate_bars
from quant.errors import ValidationError

TS = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
prices = st.one_of(
    st.decimals(min_value=Decimal("-5"), max_value=Decimal("1000"), places=2),
    st.sampled_from([Decimal("0"), Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")]),
)


def bar(**fields: object) -> BarRecord:
    values: dict[str, object] = {
        "symbol": "AAPL",
        "timeframe": Timeframe.MIN_1,
        "ts": TS,
        "open": Decimal("10"),
        "high": Decimal("11"),
        "low": Decimal("9"),
        "close": Decimal("10.5"),
        "volume": Decimal("100"),
        **fields,
    }
    return BarRecord(**values)  # type: ignore[arg-type]


@given(
    o=prices,
    h=prices,
    lo=prices,
    c=prices,
    v=prices,
    vwap=st.one_of(st.none(), prices),
    n=st.one_of(st.none(), st.integers(-2, 5)),
    aware=st.booleans(),
)
def test_the_fast_path_agrees_with_the_full_check(
    o: Decimal,
    h: Decimal,
    lo: Decimal,
    c: Decimal,
    v: Decimal,
    vwap: Decimal | None,
    n: int | None,
    aware: bool,
) -> None:
    b = bar(
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=v,
        vwap=vwap,
        trade_count=n,
        ts=TS if aware else TS.replace(tzinfo=None),
    )
    assert _plainly_sound(b) == (bar_problems(b) == [])


@pytest.mark.parametrize(
    ("fields", "phrase"),
    [
        ({"high": Decimal("8.5")}, "high: 8.5 is below max(open, close)"),
        ({"low": Decimal("10.2")}, "low: 10.2 is above min(open, close)"),
        ({"open": Decimal("0")}, "open: price must be a positive number"),
        ({"volume": Decimal("-1")}, "volume: must be zero or more"),
        ({"close": Decimal("NaN")}, "close: price must be a positive number"),
    ],
)
def test_a_bad_bar_is_named_with_its_problem(fields: dict[str, object], phrase: str) -> None:
    with pytest.raises(
        ValidationError, match="vendor X: bad bar AAPL 1Min 2024-01-02T14:31:00"
    ) as error:
        validate_bars([bar(), bar(ts=TS + timedelta(minutes=1), **fields)], source="vendor X")
    assert phrase in error.value.message


def test_duplicates_are_rejected_and_order_is_restored() -> None:
    later = bar(ts=TS + timedelta(minutes=1))
    assert validate_bars([later, bar()], source="s") == [bar(), later]
    with pytest.raises(ValidationError, match="duplicate bar AAPL 1Min"):
        validate_bars([bar(), bar(close=Decimal("10.4"))], source="s")

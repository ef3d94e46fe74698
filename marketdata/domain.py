"""Market data values and rules, free of Django: timeframes, bar records, validation."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from quant.errors import ValidationError


class Timeframe(enum.StrEnum):
    MIN_1 = "1Min"
    MIN_5 = "5Min"
    MIN_15 = "15Min"
    HOUR_1 = "1Hour"
    DAY_1 = "1Day"

    @property
    def duration(self) -> timedelta:
        return _DURATIONS[self]

    @property
    def is_intraday(self) -> bool:
        return self is not Timeframe.DAY_1

    @classmethod
    def parse(cls, value: str) -> Timeframe:
        for tf in cls:
            if tf.value.lower() == value.strip().lower():
                return tf
        choices = ", ".join(tf.value for tf in cls)
        raise ValidationError(f"unknown timeframe {value!r}: use one of {choices}")


_DURATIONS = {
    Timeframe.MIN_1: timedelta(minutes=1),
    Timeframe.MIN_5: timedelta(minutes=5),
    Timeframe.MIN_15: timedelta(minutes=15),
    Timeframe.HOUR_1: timedelta(hours=1),
    Timeframe.DAY_1: timedelta(days=1),
}


@dataclass(frozen=True, slots=True)
class BarRecord:
    """One OHLCV bar as a provider delivers it; ``ts`` is the bar's start, aware UTC."""

    symbol: str
    timeframe: Timeframe
    ts: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    vwap: Decimal | None = None
    trade_count: int | None = None
    source: str = ""


@dataclass(frozen=True, slots=True)
class Quote:
    """A top-of-book quote from a live stream."""

    symbol: str
    ts: datetime
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal


def bar_problems(bar: BarRecord) -> list[str]:
    """Every rule a bar breaks, as short phrases naming the field ('' when it is sound)."""
    problems: list[str] = []
    if bar.ts.tzinfo is None:
        problems.append("ts: timestamp has no timezone")
    for name in ("open", "high", "low", "close"):
        value = getattr(bar, name)
        if not value.is_finite() or value <= 0:
            problems.append(f"{name}: price must be a positive number, got {value}")
    if problems:
        return problems
    if bar.high < max(bar.open, bar.close):
        problems.append(f"high: {bar.high} is below max(open, close) = {max(bar.open, bar.close)}")
    if bar.low > min(bar.open, bar.close):
        problems.append(f"low: {bar.low} is above min(open, close) = {min(bar.open, bar.close)}")
    if not bar.volume.is_finite() or bar.volume < 0:
        problems.append(f"volume: must be zero or more, got {bar.volume}")
    if bar.vwap is not None and (not bar.vwap.is_finite() or bar.vwap <= 0):
        problems.append(f"vwap: must be a positive number, got {bar.vwap}")
    if bar.trade_count is not None and bar.trade_count < 0:
        problems.append(f"trade_count: must be zero or more, got {bar.trade_count}")
    return problems


def _plainly_sound(bar: BarRecord) -> bool:
    """Fast path of ``bar_problems`` for the common case; False sends the bar to the full check.

    A finite high with 0 < low <= open, close <= high makes every price finite and positive.
    """
    try:
        return (
            bar.ts.tzinfo is not None
            and bar.high.is_finite()
            and bar.low > 0
            and bar.low <= bar.open <= bar.high
            and bar.low <= bar.close <= bar.high
            and bar.volume.is_finite()
            and bar.volume >= 0
            and (bar.vwap is None or (bar.vwap.is_finite() and bar.vwap > 0))
            and (bar.trade_count is None or bar.trade_count >= 0)
        )
    except InvalidOperation:  # NaN compared
        return False


def validate_bars(bars: Iterable[BarRecord], *, source: str) -> list[BarRecord]:
    """Return the bars sorted by time, or raise naming the first bad bar of ``source``.

    Duplicated timestamps are an error: a provider that sends two different bars for one
    instant cannot be trusted to have sent the right one.
    """
    ordered = sorted(bars, key=lambda b: (b.symbol, b.ts))
    previous: BarRecord | None = None
    for bar in ordered:
        problems = [] if _plainly_sound(bar) else bar_problems(bar)
        if problems:
            raise ValidationError(
                f"{source}: bad bar {bar.symbol} {bar.timeframe} {bar.ts.isoformat()}: "
                + "; ".join(problems),
                details={"symbol": bar.symbol, "ts": bar.ts.isoformat(), "problems": problems},
            )
        if previous and previous.symbol == bar.symbol and previous.ts == bar.ts:
            raise ValidationError(
                f"{source}: duplicate bar {bar.symbol} {bar.timeframe} {bar.ts.isoformat()}",
                details={"symbol": bar.symbol, "ts": bar.ts.isoformat()},
            )
        previous = bar
    return ordered


def daily_ts(moment: datetime, *, exchange_tz: str = "America/New_York") -> datetime:
    """Canonical timestamp of a daily bar: the exchange-local date at 00:00 UTC.

    Vendors stamp daily bars differently (Alpaca and Polygon at local midnight, files with a
    bare date); normalising to the session date makes them agree.
    """
    from zoneinfo import ZoneInfo

    local = moment.astimezone(ZoneInfo(exchange_tz)) if moment.tzinfo else moment
    return datetime(local.year, local.month, local.day, tzinfo=UTC)

"""Where the simulated venue gets its prices: finished bars, never one still forming.

``PriceSource`` is what the venue asks; ``DatabasePriceSource`` answers from
``marketdata.Bar``. A bar counts once it has *finished* by the clock's now: an intraday bar at
``ts + duration``, a daily bar (stamped 00:00 UTC of its session) at the session's close on the
exchange calendar (at ``ts + 1 day`` for a date that is not a session, e.g. crypto weekends).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from django.conf import settings
from django.db.models import QuerySet

from marketdata.domain import Timeframe
from marketdata.models import Bar
from quant.calendar import MarketCalendar
from quant.clock import Clock
from quant.strategies.base import PriceBar

# Finest first: a symbol with minute bars is priced on them rather than on its daily bars.
TIMEFRAMES = sorted(Timeframe, key=lambda tf: tf.duration)


class PriceSource(Protocol):
    def latest_bar(self, symbol: str, at: datetime | None = None) -> PriceBar | None:
        """The newest bar of ``symbol`` finished by ``at`` (default: now), or None."""
        ...

    def bars_after(self, symbol: str, ts: datetime) -> list[PriceBar]:
        """The bars after the bar that started at ``ts`` (start > ts) that have finished by
        now, oldest first."""
        ...


class DatabasePriceSource:
    """Finished bars from ``marketdata.Bar``, on the finest timeframe stored for the symbol
    (or on ``timeframe`` when given). The choice is made at each call (a few index probes), so
    a long-lived broker picks up minute bars ingested after it started."""

    def __init__(
        self, *, clock: Clock, timeframe: Timeframe | None = None, exchange: str | None = None
    ) -> None:
        self.clock = clock
        self.timeframe = timeframe
        self.calendar = MarketCalendar(exchange or settings.MARKETDATA_EXCHANGE)

    def latest_bar(self, symbol: str, at: datetime | None = None) -> PriceBar | None:
        now = self.clock.now() if at is None else min(at, self.clock.now())
        timeframe = self._timeframe(symbol)
        if timeframe is None:
            return None
        # A daily bar stamped today may still be forming: look at the two newest candidates.
        rows = self._rows(symbol, timeframe).filter(ts__lte=now).order_by("-ts")[:2]
        for bar in rows:
            if self._end(bar.ts, timeframe) <= now:
                return _price_bar(symbol, bar)
        return None

    def bars_after(self, symbol: str, ts: datetime) -> list[PriceBar]:
        now = self.clock.now()
        timeframe = self._timeframe(symbol)
        if timeframe is None:
            return []
        rows = self._rows(symbol, timeframe).filter(ts__gt=ts, ts__lte=now).order_by("ts")
        return [_price_bar(symbol, bar) for bar in rows if self._end(bar.ts, timeframe) <= now]

    def _rows(self, symbol: str, timeframe: Timeframe) -> QuerySet[Bar]:
        return Bar.objects.filter(instrument__symbol=symbol, timeframe=timeframe.value).only(
            "ts", "open", "high", "low", "close", "volume"
        )

    def _timeframe(self, symbol: str) -> Timeframe | None:
        if self.timeframe is not None:
            return self.timeframe
        for timeframe in TIMEFRAMES:
            if Bar.objects.filter(instrument__symbol=symbol, timeframe=timeframe).exists():
                return timeframe
        return None

    def _end(self, ts: datetime, timeframe: Timeframe) -> datetime:
        if timeframe is not Timeframe.DAY_1:
            return ts + timeframe.duration
        day = ts.date()
        if self.calendar.is_session(day):
            return self.calendar.session_close(day)
        return ts + timedelta(days=1)


def _price_bar(symbol: str, bar: Bar) -> PriceBar:
    """Decimal prices to the float64 values of the fill model (as a backtest loads them)."""
    return PriceBar(
        symbol,
        bar.ts,
        float(bar.open),
        float(bar.high),
        float(bar.low),
        float(bar.close),
        float(bar.volume),
    )

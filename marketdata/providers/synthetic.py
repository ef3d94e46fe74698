"""Seeded, reproducible synthetic bars on the exchange calendar.

The same (seed, symbol) always gives the same prices, whatever range is asked for: the
daily closes are one random walk from a fixed epoch, and each session's minute path is a
Brownian bridge from its open to its close drawn from a generator seeded by (seed, symbol,
session). Daily high/low come from that minute path, so daily bars and resampled minute
bars agree. Bars that have not finished at ``clock.now()`` are never returned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

import numpy as np
import pandas as pd

from marketdata.domain import BarRecord, Quote, Timeframe
from marketdata.providers.base import DataProvider
from quant.calendar import MarketCalendar, day_start
from quant.clock import Clock, SystemClock, ensure_utc

EPOCH = date(2005, 1, 3)
DAILY_VOL = 0.018
CENT = Decimal("0.01")


def _symbol_key(symbol: str) -> int:
    return int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:4], "big")


@lru_cache(maxsize=64)
def _daily_path(
    seed: int, symbol: str, exchange: str
) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """Opens and closes of every session from EPOCH to the calendar's end."""
    cal = MarketCalendar(exchange)
    sessions = pd.DatetimeIndex(cal.sessions(EPOCH, date(2100, 1, 1)))
    rng = np.random.default_rng([seed, _symbol_key(symbol)])
    drift = rng.uniform(-0.0002, 0.0004)
    start_price = float(rng.uniform(20, 400))
    returns = rng.normal(drift, DAILY_VOL, len(sessions))
    closes = start_price * np.exp(np.cumsum(returns))
    gaps = rng.normal(0, DAILY_VOL * 0.3, len(sessions))
    opens = np.concatenate([[start_price], closes[:-1]]) * np.exp(gaps)
    return sessions, opens, closes


class SyntheticProvider(DataProvider):
    name = "synthetic"

    def __init__(
        self, *, seed: int = 42, exchange: str = "XNYS", clock: Clock | None = None
    ) -> None:
        self.seed = seed
        self.calendar = MarketCalendar(exchange)
        self.exchange = exchange
        self.clock = clock or SystemClock()

    def get_bars(
        self, symbol: str, start: datetime, end: datetime, timeframe: Timeframe
    ) -> list[BarRecord]:
        return list(self.iter_bars(symbol, start, end, timeframe))

    def iter_bars(
        self, symbol: str, start: datetime, end: datetime, timeframe: Timeframe
    ) -> Iterator[BarRecord]:
        """Bars one session at a time, so long minute ranges stream in constant memory."""
        start, end = ensure_utc(start), min(ensure_utc(end), self.clock.now())
        sessions, opens, closes = _daily_path(self.seed, symbol, self.exchange)
        first = sessions.searchsorted(pd.Timestamp(start.date()))
        last = sessions.searchsorted(pd.Timestamp(end.date()), side="right")
        for i in range(first, last):
            day = sessions[i].date()
            minutes, path = self._session_path(symbol, day, opens[i], closes[i])
            if timeframe is Timeframe.DAY_1:
                if start <= day_start(day) <= end and self.calendar.session_close(day) <= end:
                    yield self._bar(symbol, timeframe, day_start(day), path, minutes)
                continue
            yield from self._intraday(symbol, timeframe, minutes, path, start, end)

    def _session_path(
        self, symbol: str, day: date, open_: float, close: float
    ) -> tuple[pd.DatetimeIndex, np.ndarray]:
        """Minute closes from open to close (a Brownian bridge in log space)."""
        minutes = self.calendar.session_minutes(day)
        n = len(minutes)
        rng = np.random.default_rng([self.seed, _symbol_key(symbol), day.toordinal()])
        steps = rng.normal(0, DAILY_VOL / np.sqrt(n), n)
        walk = np.cumsum(steps)
        t = np.arange(1, n + 1) / n
        bridge = walk - t * walk[-1]
        log_path = np.log(open_) + t * (np.log(close) - np.log(open_)) + bridge
        return minutes, np.exp(np.concatenate([[np.log(open_)], log_path]))

    def _intraday(
        self,
        symbol: str,
        timeframe: Timeframe,
        minutes: pd.DatetimeIndex,
        path: np.ndarray,
        start: datetime,
        end: datetime,
    ) -> Iterator[BarRecord]:
        seconds = int(timeframe.duration.total_seconds())
        epoch = minutes.asi8 // 1_000_000_000
        buckets = epoch - epoch % seconds
        first = np.r_[0, np.flatnonzero(np.diff(buckets)) + 1]
        last = np.r_[first[1:], len(buckets)] - 1
        opens, closes = path[first], path[last + 1]
        highs = np.maximum(np.maximum.reduceat(path[1:], first), opens)
        lows = np.minimum(np.minimum.reduceat(path[1:], first), opens)
        minute_volumes = self._minute_volumes(symbol, int(epoch[0]), len(path) - 1)
        volumes = np.add.reduceat(minute_volumes, first)
        vwaps = np.add.reduceat(path[1:] * minute_volumes, first) / volumes
        now = self.clock.now()
        for k, bucket in enumerate(buckets[first]):
            ts = datetime.fromtimestamp(int(bucket), tz=UTC)
            if ts < start or ts > end or ts + timeframe.duration > now:
                continue
            yield _record(
                symbol,
                timeframe,
                ts,
                opens[k],
                highs[k],
                lows[k],
                closes[k],
                vwaps[k],
                int(volumes[k]),
            )

    def _minute_volumes(self, symbol: str, session_key: int, count: int) -> np.ndarray:
        """Per-minute volumes of a session; every timeframe sums these, so they agree."""
        rng = np.random.default_rng([self.seed, _symbol_key(symbol), session_key])
        return rng.lognormal(np.log(3_000), 0.4, count).astype(np.int64) + 1

    def _bar(
        self,
        symbol: str,
        timeframe: Timeframe,
        ts: datetime,
        path: np.ndarray,
        minutes: pd.DatetimeIndex,
    ) -> BarRecord:
        """The daily bar over a whole session's minute path (path[0] is the open)."""
        volumes = self._minute_volumes(symbol, int(minutes.asi8[0] // 1_000_000_000), len(minutes))
        vwap = float(np.sum(path[1:] * volumes) / volumes.sum())
        return _record(
            symbol,
            timeframe,
            ts,
            path[0],
            path.max(),
            path.min(),
            path[-1],
            vwap,
            int(volumes.sum()),
        )

    def stream_live_quotes(self, symbols: Sequence[str]) -> Iterator[Quote]:
        """Endless quotes around each symbol's latest close, one round per call of next()."""
        rng = np.random.default_rng([self.seed, 7])
        now = self.clock.now()
        last = {s: self._last_close(s, now) for s in symbols}
        while True:
            ts = self.clock.now()
            for symbol in symbols:
                last[symbol] *= float(np.exp(rng.normal(0, DAILY_VOL / 20)))
                mid = Decimal(f"{last[symbol]:.4f}")
                spread = max(CENT, (mid * Decimal("0.0002")).quantize(CENT))
                yield Quote(
                    symbol,
                    ts,
                    (mid - spread / 2).quantize(CENT),
                    (mid + spread / 2).quantize(CENT),
                    Decimal(100),
                    Decimal(100),
                )

    def _last_close(self, symbol: str, now: datetime) -> float:
        sessions, _, closes = _daily_path(self.seed, symbol, self.exchange)
        i = max(0, int(sessions.searchsorted(pd.Timestamp(now.date()), side="right")) - 1)
        return float(closes[i])


def _cents(value: float) -> Decimal:
    return Decimal(f"{value:.2f}")


def _record(
    symbol: str,
    timeframe: Timeframe,
    ts: datetime,
    open_: float,
    high: float,
    low: float,
    close: float,
    vwap: float,
    volume: int,
) -> BarRecord:
    """Round to cents and keep the OHLC rules true after rounding."""
    o, c = _cents(open_), _cents(close)
    h = max(_cents(high), o, c)
    lo = min(_cents(low), o, c)
    return BarRecord(
        symbol=symbol,
        timeframe=timeframe,
        ts=ts,
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=Decimal(volume),
        vwap=min(max(Decimal(f"{vwap:.4f}"), lo), h),
        trade_count=max(1, volume // 150),
        source="synthetic",
    )


def synthetic_range(years: float, now: datetime) -> tuple[datetime, datetime]:
    """The [start, end] covering the last ``years`` years up to ``now``."""
    return now - timedelta(days=round(365.25 * years)), now

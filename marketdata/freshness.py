"""When should the latest bar exist? Staleness rules on the exchange calendar (Django-free)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from marketdata.domain import Timeframe
from quant.calendar import MarketCalendar, day_start


def expected_last_bar(
    calendar: MarketCalendar, timeframe: Timeframe, now: datetime
) -> datetime | None:
    """Start time of the newest bar that has finished by ``now``."""
    if timeframe is Timeframe.DAY_1:
        session = calendar.last_closed_session(now)
        return day_start(session) if session else None
    step = int(timeframe.duration.total_seconds())
    today = now.astimezone(UTC).date()
    if calendar.is_session(today) and calendar.session_open(today) < now:
        end = min(now, calendar.session_close(today))
        opened = calendar.session_open(today)
    else:
        session = calendar.last_closed_session(now)
        if session is None:
            return None
        end, opened = calendar.session_close(session), calendar.session_open(session)
    latest = int((end - timeframe.duration).timestamp()) // step * step
    start = datetime.fromtimestamp(latest, tz=UTC)
    return start if start >= opened - timeframe.duration else None


@dataclass(frozen=True)
class Freshness:
    last_bar: datetime | None
    expected: datetime | None
    tolerance: timedelta

    @property
    def is_stale(self) -> bool:
        if self.expected is None:
            return False
        return self.last_bar is None or self.last_bar < self.expected - self.tolerance

    @property
    def lag(self) -> timedelta | None:
        if self.expected is None or self.last_bar is None:
            return None
        return max(timedelta(0), self.expected - self.last_bar)


def default_tolerance(timeframe: Timeframe) -> timedelta:
    """Vendors publish bars a little late; daily data must be complete to the last session."""
    return (
        timedelta(0)
        if timeframe is Timeframe.DAY_1
        else max(timeframe.duration, timedelta(minutes=15))
    )


def freshness(
    *, calendar: MarketCalendar, timeframe: Timeframe, last_bar: datetime | None, now: datetime
) -> Freshness:
    return Freshness(
        last_bar, expected_last_bar(calendar, timeframe, now), default_tolerance(timeframe)
    )

"""Exchange sessions and holidays from the exchange_calendars library (never hand-written)."""

from __future__ import annotations

import warnings
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

import exchange_calendars as xcals
import pandas as pd

# exchange_calendars 4.13 still reads ``.values`` of tz-aware pandas data (pandas 3.1 warns).
warnings.filterwarnings(
    "ignore",
    message=r".*\.values returning an ndarray that drops timezone",
    category=DeprecationWarning,
    module=r"exchange_calendars\.",
)

DEFAULT_EXCHANGE = "XNYS"
_CALENDAR_START = "2000-01-01"


@lru_cache(maxsize=8)
def _calendar(exchange: str) -> xcals.ExchangeCalendar:
    return xcals.get_calendar(exchange, start=_CALENDAR_START)


class MarketCalendar:
    """Sessions of one exchange; all returned datetimes are aware UTC."""

    def __init__(self, exchange: str = DEFAULT_EXCHANGE) -> None:
        self.exchange = exchange
        self._cal = _calendar(exchange)

    def sessions(self, start: date, end: date) -> list[date]:
        """Trading sessions with start <= session <= end."""
        first = max(start, self._cal.first_session.date())
        last = min(end, self._cal.last_session.date())
        if first > last:
            return []
        return [ts.date() for ts in self._cal.sessions_in_range(first, last)]

    def is_session(self, day: date) -> bool:
        return bool(self._cal.is_session(pd.Timestamp(day)))

    def session_open(self, day: date) -> datetime:
        return self._cal.session_open(pd.Timestamp(day)).to_pydatetime().astimezone(UTC)

    def session_close(self, day: date) -> datetime:
        return self._cal.session_close(pd.Timestamp(day)).to_pydatetime().astimezone(UTC)

    def session_minutes(self, day: date) -> pd.DatetimeIndex:
        """Start times (UTC) of every one-minute bar in the session."""
        return self._cal.session_minutes(pd.Timestamp(day))

    def last_closed_session(self, now: datetime) -> date | None:
        """The most recent session whose close is at or before ``now``."""
        day = now.astimezone(UTC).date()
        for candidate in reversed(self.sessions(day - timedelta(days=14), day)):
            if self.session_close(candidate) <= now:
                return candidate
        return None

    def next_open(self, now: datetime) -> datetime:
        """The opening of the first session that opens after ``now``."""
        day = now.astimezone(UTC).date()
        for candidate in self.sessions(day, day + timedelta(days=14)):
            opening = self.session_open(candidate)
            if opening > now:
                return opening
        raise ValueError(f"no session of {self.exchange} opens in the two weeks after {now}")

    def sessions_between(self, start: datetime, end: datetime) -> list[date]:
        """Sessions whose calendar date lies within [start, end] (both aware datetimes)."""
        return self.sessions(start.astimezone(UTC).date(), end.astimezone(UTC).date())


def day_start(day: date) -> datetime:
    """Canonical timestamp of a daily bar: the session date at 00:00 UTC."""
    return datetime.combine(day, time(0), tzinfo=UTC)

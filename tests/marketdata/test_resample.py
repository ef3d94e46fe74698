"""Resampling in the database (time_bucket / date_bin / SQLite arithmetic) and freshness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from django.db import connection

from marketdata import services
from marketdata.domain import Timeframe
from marketdata.freshness import default_tolerance, expected_last_bar, freshness
from marketdata.models import Bar
from marketdata.providers.synthetic import SyntheticProvider
from marketdata.selectors import bars_resample, check_data_freshness
from marketdata.timebucket import TimeBucket
from quant.calendar import MarketCalendar
from quant.clock import ManualClock
from quant.errors import NotFoundError, ValidationError

NOW = datetime(2024, 7, 1, 21, 0, tzinfo=UTC)
WEEK = (datetime(2024, 6, 24, tzinfo=UTC), datetime(2024, 6, 29, tzinfo=UTC))


def ingest(timeframe: Timeframe, start: datetime = WEEK[0], end: datetime = WEEK[1]) -> None:
    job = services.ingestion_job_create(
        provider="synthetic", symbols=["AAPL"], timeframe=timeframe, start=start, end=end
    )
    services.ingestion_job_run(
        job_id=job.pk, provider=SyntheticProvider(seed=3, clock=ManualClock(NOW))
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "target", [Timeframe.MIN_5, Timeframe.MIN_15, Timeframe.HOUR_1, Timeframe.DAY_1]
)
def test_resampled_minutes_equal_the_provider_bars(target: Timeframe) -> None:
    ingest(Timeframe.MIN_1)
    resampled = bars_resample(symbol="AAPL", source=Timeframe.MIN_1, target=target)
    expected = SyntheticProvider(seed=3, clock=ManualClock(NOW)).get_bars("AAPL", *WEEK, target)
    if target is Timeframe.DAY_1:
        # Daily bars are stamped at 00:00 UTC of the session date; NY sessions fit in one UTC day.
        assert [r.ts.date() for r in resampled] == [e.ts.date() for e in expected]
    else:
        assert [r.ts for r in resampled] == [e.ts for e in expected]
    fields = ("open", "high", "low", "close", "volume")
    assert [tuple(getattr(r, f) for f in fields) for r in resampled] == [
        tuple(getattr(e, f) for f in fields) for e in expected
    ]


@pytest.mark.django_db
def test_resampling_to_a_finer_or_uneven_timeframe_is_refused() -> None:
    with pytest.raises(ValidationError, match="must be coarser"):
        bars_resample(symbol="AAPL", source=Timeframe.HOUR_1, target=Timeframe.MIN_5)


@pytest.mark.django_db
def test_time_bucket_floors_to_the_width_from_midnight_utc() -> None:
    ingest(Timeframe.MIN_15, WEEK[0], WEEK[0] + timedelta(days=1))
    rows = (
        Bar.objects.annotate(b=TimeBucket(timedelta(hours=1), "ts"))
        .values_list("ts", "b")
        .order_by("ts")
    )
    assert rows
    for ts, bucket in rows:
        assert bucket == ts.replace(minute=0, second=0, microsecond=0)
    with pytest.raises(ValueError, match="positive whole number"):
        TimeBucket(timedelta(seconds=0.5), "ts")
    assert connection.vendor in ("postgresql", "sqlite")


@pytest.mark.parametrize(
    ("now", "timeframe", "expected"),
    [
        # Saturday: the last closed daily session is Friday.
        (
            datetime(2024, 7, 6, 12, 0, tzinfo=UTC),
            Timeframe.DAY_1,
            datetime(2024, 7, 5, tzinfo=UTC),
        ),
        # Monday before the open: still Friday.
        (
            datetime(2024, 7, 8, 13, 0, tzinfo=UTC),
            Timeframe.DAY_1,
            datetime(2024, 7, 5, tzinfo=UTC),
        ),
        # Monday 10:07 New York: the 10:06 minute bar is the newest finished one.
        (
            datetime(2024, 7, 8, 14, 7, 30, tzinfo=UTC),
            Timeframe.MIN_1,
            datetime(2024, 7, 8, 14, 6, tzinfo=UTC),
        ),
        # Independence Day (holiday): the last minute bar of July 3rd, an early close at 13:00 NY.
        (
            datetime(2024, 7, 4, 15, 0, tzinfo=UTC),
            Timeframe.MIN_1,
            datetime(2024, 7, 3, 16, 59, tzinfo=UTC),
        ),
        (
            datetime(2024, 7, 8, 16, 10, tzinfo=UTC),
            Timeframe.HOUR_1,
            datetime(2024, 7, 8, 15, 0, tzinfo=UTC),
        ),
    ],
)
def test_expected_last_bar_follows_the_exchange_calendar(
    now: datetime, timeframe: Timeframe, expected: datetime
) -> None:
    assert expected_last_bar(MarketCalendar("XNYS"), timeframe, now) == expected


def test_freshness_tolerates_vendor_delay_intraday_but_not_a_missing_session() -> None:
    calendar = MarketCalendar("XNYS")
    now = datetime(2024, 7, 8, 15, 0, tzinfo=UTC)
    ten_minutes_late = freshness(
        calendar=calendar, timeframe=Timeframe.MIN_1, last_bar=now - timedelta(minutes=11), now=now
    )
    assert not ten_minutes_late.is_stale and ten_minutes_late.lag == timedelta(minutes=10)
    assert freshness(
        calendar=calendar, timeframe=Timeframe.MIN_1, last_bar=now - timedelta(hours=1), now=now
    ).is_stale
    assert freshness(
        calendar=calendar,
        timeframe=Timeframe.DAY_1,
        last_bar=datetime(2024, 7, 3, tzinfo=UTC),
        now=now,
    ).is_stale
    assert default_tolerance(Timeframe.DAY_1) == timedelta(0)


@pytest.mark.django_db
def test_check_data_freshness_reads_the_newest_stored_bar() -> None:
    ingest(Timeframe.DAY_1, datetime(2024, 6, 1, tzinfo=UTC), NOW)
    assert not check_data_freshness(symbol="AAPL", now=NOW).is_stale
    assert check_data_freshness(symbol="AAPL", now=NOW + timedelta(days=3)).is_stale
    with pytest.raises(NotFoundError, match="unknown instrument 'ZZZ'"):
        check_data_freshness(symbol="ZZZ")


@pytest.mark.django_db
def test_bars_frame_is_a_float_frame_indexed_by_utc_time() -> None:
    from marketdata.selectors import bars_frame

    ingest(Timeframe.DAY_1, datetime(2024, 6, 1, tzinfo=UTC), NOW)
    frame = bars_frame(
        symbol="AAPL", timeframe=Timeframe.DAY_1, start=datetime(2024, 6, 10, tzinfo=UTC)
    )
    stored = list(Bar.objects.filter(ts__gte=datetime(2024, 6, 10, tzinfo=UTC)).order_by("ts"))
    assert (
        list(frame.index) == [b.ts for b in stored]
        and str(pd.DatetimeIndex(frame.index).tz) == "UTC"
    )
    assert frame["close"].tolist() == [float(b.close) for b in stored]
    assert {str(dtype) for dtype in frame.dtypes} == {"float64"}
    empty = bars_frame(symbol="MSFT", timeframe=Timeframe.DAY_1)
    assert empty.empty and list(empty.columns) == list(frame.columns)

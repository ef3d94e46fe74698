"""Data-quality checks: each finding on hand-built bars; clean synthetic data is OK."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from marketdata import services
from marketdata.domain import Timeframe
from marketdata.models import DataQualityReport
from marketdata.providers.synthetic import SyntheticProvider
from marketdata.quality import Finding, Row, check_bars, expected_bars
from quant.calendar import MarketCalendar
from quant.clock import ManualClock

CAL = MarketCalendar("XNYS")
NOW = datetime(2024, 7, 1, 21, 0, tzinfo=UTC)


def daily(start: datetime = datetime(2024, 5, 1, tzinfo=UTC), end: datetime = NOW) -> list[Row]:
    bars = SyntheticProvider(seed=5, clock=ManualClock(NOW)).get_bars(
        "AAPL", start, end, Timeframe.DAY_1
    )
    return [(b.ts, b.open, b.high, b.low, b.close, b.volume) for b in bars]


def minutes(day: datetime = datetime(2024, 6, 28, tzinfo=UTC)) -> list[Row]:
    bars = SyntheticProvider(seed=5, clock=ManualClock(datetime(2024, 7, 10, tzinfo=UTC))).get_bars(
        "AAPL", day, day + timedelta(days=1), Timeframe.MIN_1
    )
    return [(b.ts, b.open, b.high, b.low, b.close, b.volume) for b in bars]


def test_clean_synthetic_daily_and_minute_data_is_ok() -> None:
    for rows, timeframe, now in (
        (daily(), Timeframe.DAY_1, NOW),
        (minutes(), Timeframe.MIN_1, datetime(2024, 6, 28, 21, tzinfo=UTC)),
    ):
        result = check_bars(rows, timeframe=timeframe, calendar=CAL, now=now)
        assert (result.status, result.issue_counts, result.findings) == ("OK", {}, [])
        assert result.bar_count == len(rows) and result.range_end == rows[-1][0]


def test_missing_sessions_are_gaps_but_holidays_and_weekends_are_not() -> None:
    rows = daily()
    dropped = [
        r for r in rows if r[0].date().isoformat() not in ("2024-06-04", "2024-06-05", "2024-06-11")
    ]
    result = check_bars(dropped, timeframe=Timeframe.DAY_1, calendar=CAL, now=NOW)
    assert result.status == "WARNING" and result.issue_counts == {"gaps": 3}
    assert [f.message for f in result.findings] == [
        "missing 2 bars from 2024-06-04T00:00:00+00:00 to 2024-06-05T00:00:00+00:00",
        "missing bar at 2024-06-11T00:00:00+00:00",
    ]
    assert datetime(2024, 6, 19, tzinfo=UTC) not in expected_bars(
        rows[0][0], rows[-1][0], Timeframe.DAY_1, CAL
    )


def test_intraday_gaps_follow_the_session_including_early_closes() -> None:
    rows = minutes(datetime(2024, 7, 3, tzinfo=UTC))  # early close at 13:00 New York
    assert len(rows) == 210
    after_close = datetime(2024, 7, 3, 21, tzinfo=UTC)
    assert (
        check_bars(rows, timeframe=Timeframe.MIN_1, calendar=CAL, now=after_close).issue_counts
        == {}
    )
    holes = rows[:50] + rows[55:]
    result = check_bars(
        holes, timeframe=Timeframe.MIN_1, calendar=CAL, now=datetime(2024, 7, 3, 18, tzinfo=UTC)
    )
    assert result.issue_counts == {"gaps": 5}
    assert result.findings[0].message.startswith("missing 5 bars from 2024-07-03T14:20:00+00:00")


def test_ohlc_volume_and_duplicates_fail_the_report() -> None:
    rows = daily()
    ts, o, h, lo, c, v = rows[5]
    rows[5] = (ts, o, min(o, c) - Decimal("1"), lo - Decimal("2"), c, v)  # high below open/close
    ts, o, h, lo, c, v = rows[6]
    rows[6] = (ts, o, h, max(o, c) + Decimal("0.5"), c, v)  # low above open/close
    ts, o, h, lo, c, v = rows[7]
    rows[7] = (ts, o, h, lo, c, Decimal("-10"))
    rows.append(rows[8])
    result = check_bars(rows, timeframe=Timeframe.DAY_1, calendar=CAL, now=NOW)
    assert result.status == "FAILED"
    assert result.issue_counts == {"ohlc": 2, "volume": 1, "duplicates": 1}
    checks: dict[str, Finding] = {}
    for finding in result.findings:
        checks.setdefault(finding.check, finding)
    assert (
        "is below max(open" in checks["ohlc"].message
        and checks["ohlc"].ts == rows[5][0].isoformat()
    )
    assert checks["volume"].message == "negative volume -10"


def test_a_price_spike_is_an_outlier() -> None:
    rows = daily()
    ts, o, _h, lo, c, v = rows[20]
    rows[20] = (ts, o, c * 3, lo, c * 3, v)
    result = check_bars(rows, timeframe=Timeframe.DAY_1, calendar=CAL, now=NOW)
    assert result.status == "WARNING" and result.issue_counts["outliers"] == 2  # up, then back down
    assert "close moved +" in result.findings[0].message and result.findings[0].ts == ts.isoformat()


def test_stale_and_empty_series() -> None:
    result = check_bars(
        daily(end=datetime(2024, 6, 20, 21, tzinfo=UTC)),
        timeframe=Timeframe.DAY_1,
        calendar=CAL,
        now=NOW,
    )
    assert result.is_stale and result.issue_counts == {"stale": 1}
    assert "should exist by 2024-07-01 21:00 UTC" in result.findings[0].message
    empty = check_bars([], timeframe=Timeframe.DAY_1, calendar=CAL, now=NOW)
    assert empty.bar_count == 0 and empty.is_stale and empty.status == "WARNING"


@pytest.mark.django_db
def test_reports_are_stored_per_instrument_and_the_command_prints_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = services.ingestion_job_create(
        provider="synthetic",
        symbols=["AAPL", "MSFT"],
        timeframe=Timeframe.DAY_1,
        start=datetime(2024, 1, 1, tzinfo=UTC),
        end=NOW,
    )
    services.ingestion_job_run(job_id=job.pk, provider=SyntheticProvider(clock=ManualClock(NOW)))
    reports = services.data_quality_run(now=NOW)
    assert [(r.instrument.symbol, r.status, r.is_stale) for r in reports] == [
        ("AAPL", "OK", False),
        ("MSFT", "OK", False),
    ]
    call_command("data_quality", "--symbols", "msft")
    out = capsys.readouterr().out
    assert "MSFT" in out and "AAPL" not in out
    latest = DataQualityReport.objects.filter(instrument__symbol="MSFT").first()
    assert (
        latest is not None and latest.issue_counts.get("stale") == 1
    )  # checked today: data ends in 2024
    with pytest.raises(CommandError, match="unknown instrument: ZZZ"):
        call_command("data_quality", "--symbols", "MSFT,ZZZ")

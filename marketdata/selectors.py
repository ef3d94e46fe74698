"""Reads of the market data app: bar frames, coverage per instrument, resampling."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import pandas as pd
from django.conf import settings
from django.db.models import Count, Max, Min, OuterRef, QuerySet, Subquery, Sum
from django.utils import timezone

from marketdata.domain import BarRecord, Timeframe
from marketdata.freshness import Freshness, freshness
from marketdata.models import Bar, DataQualityReport, Instrument
from marketdata.timebucket import TimeBucket
from quant.calendar import MarketCalendar
from quant.errors import NotFoundError, ValidationError


def bars_list(
    *, symbol: str, timeframe: Timeframe, start: datetime | None = None, end: datetime | None = None
) -> QuerySet[Bar]:
    qs = Bar.objects.filter(instrument__symbol=symbol, timeframe=timeframe.value)
    if start is not None:
        qs = qs.filter(ts__gte=start)
    if end is not None:
        qs = qs.filter(ts__lte=end)
    return qs.order_by("ts")


FRAME_COLUMNS = ("open", "high", "low", "close", "volume", "vwap", "trade_count")


def bars_frame(
    *, symbol: str, timeframe: Timeframe, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """Stored bars as a float64 frame indexed by UTC bar start (for research and backtests).

    Money stays Decimal in the database and the order path; analytics work in float64.
    """
    rows = bars_list(symbol=symbol, timeframe=timeframe, start=start, end=end).values_list(
        "ts", *FRAME_COLUMNS
    )
    frame = pd.DataFrame.from_records(list(rows), columns=["ts", *FRAME_COLUMNS])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame = frame.set_index("ts")
    return frame.astype("float64")


@dataclass(frozen=True)
class Coverage:
    instrument: Instrument
    timeframe: str
    bar_count: int
    first_ts: datetime | None
    last_ts: datetime | None
    freshness: Freshness


def instruments_coverage(*, now: datetime | None = None) -> list[Coverage]:
    """Bar counts, first/last bar and freshness per instrument and timeframe (one query)."""
    now = now or timezone.now()
    calendar = MarketCalendar(settings.MARKETDATA_EXCHANGE)
    instruments = {i.pk: i for i in Instrument.objects.all()}
    rows = (
        Bar.objects.values("instrument_id", "timeframe")
        .annotate(n=Count("*"), first=Min("ts"), last=Max("ts"))
        .order_by("instrument_id", "timeframe")
    )
    result = [
        Coverage(
            instruments[r["instrument_id"]],
            r["timeframe"],
            r["n"],
            r["first"],
            r["last"],
            freshness(
                calendar=calendar, timeframe=Timeframe(r["timeframe"]), last_bar=r["last"], now=now
            ),
        )
        for r in rows
    ]
    covered = {c.instrument.pk for c in result}
    result += [
        Coverage(
            i,
            Timeframe.DAY_1.value,
            0,
            None,
            None,
            freshness(calendar=calendar, timeframe=Timeframe.DAY_1, last_bar=None, now=now),
        )
        for pk, i in instruments.items()
        if pk not in covered
    ]
    return sorted(result, key=lambda c: (c.instrument.symbol, c.timeframe))


def quality_latest() -> dict[tuple[int, str], DataQualityReport]:
    """The newest quality report per (instrument id, timeframe), in one query."""
    newest = DataQualityReport.objects.filter(
        instrument=OuterRef("instrument"), timeframe=OuterRef("timeframe")
    ).order_by("-checked_at", "-pk")
    reports = DataQualityReport.objects.filter(pk=Subquery(newest.values("pk")[:1]))
    return {(r.instrument_id, r.timeframe): r for r in reports}


def check_data_freshness(
    *, symbol: str, timeframe: Timeframe = Timeframe.DAY_1, now: datetime | None = None
) -> Freshness:
    """Is the newest stored bar of ``symbol`` as recent as the exchange calendar says it should be?"""
    if not Instrument.objects.filter(symbol=symbol).exists():
        raise NotFoundError(f"unknown instrument {symbol!r}")
    last = Bar.objects.filter(instrument__symbol=symbol, timeframe=timeframe.value).aggregate(
        m=Max("ts")
    )["m"]
    return freshness(
        calendar=MarketCalendar(settings.MARKETDATA_EXCHANGE),
        timeframe=timeframe,
        last_bar=last,
        now=now or timezone.now(),
    )


def bars_resample(
    *,
    symbol: str,
    source: Timeframe,
    target: Timeframe,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[BarRecord]:
    """Aggregate stored bars into a coarser timeframe, bucketing in the database.

    High, low and volume aggregate per bucket in SQL; open and close come from each
    bucket's first and last bar, fetched by timestamp in a second query.
    """
    if target.duration <= source.duration:
        raise ValidationError(f"cannot resample {source} into {target}: the target must be coarser")
    if target.duration.total_seconds() % source.duration.total_seconds():
        raise ValidationError(f"{target} is not a whole multiple of {source}")
    base = bars_list(symbol=symbol, timeframe=source, start=start, end=end)
    groups = list(
        base.annotate(bucket=TimeBucket(target.duration, "ts"))
        .values("bucket")
        .annotate(
            high=Max("high"),
            low=Min("low"),
            volume=Sum("volume"),
            first=Min("ts"),
            last=Max("ts"),
            trades=Sum("trade_count"),
        )
        .order_by("bucket")
    )
    edges = {g["first"] for g in groups} | {g["last"] for g in groups}
    prices = dict(
        (ts, (o, c)) for ts, o, c in base.filter(ts__in=edges).values_list("ts", "open", "close")
    )
    return [
        BarRecord(
            symbol=symbol,
            timeframe=target,
            ts=g["bucket"],
            open=prices[g["first"]][0],
            high=g["high"],
            low=g["low"],
            close=prices[g["last"]][1],
            volume=Decimal(g["volume"]),
            trade_count=g["trades"],
            source="resampled",
        )
        for g in groups
    ]

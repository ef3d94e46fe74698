"""Data-quality checks over one instrument's bars (Django-free).

Checks: gaps against the exchange calendar, OHLC consistency, non-negative volume,
duplicate timestamps, outlier returns (robust z-score of log returns on the median absolute
deviation) and staleness. Integrity breaks (OHLC, volume, duplicates) make a report FAILED;
gaps, outliers and staleness make it a WARNING.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from marketdata.domain import Timeframe
from marketdata.freshness import freshness
from quant.calendar import MarketCalendar, day_start

GAPS, OHLC, VOLUME, DUPLICATES, OUTLIERS, STALE = (
    "gaps",
    "ohlc",
    "volume",
    "duplicates",
    "outliers",
    "stale",
)
FAILING = {OHLC, VOLUME, DUPLICATES}
MAX_FINDINGS_PER_CHECK = 100
DEFAULT_OUTLIER_Z = 8.0

Row = tuple[
    datetime, Decimal, Decimal, Decimal, Decimal, Decimal
]  # ts, open, high, low, close, volume


@dataclass(frozen=True)
class Finding:
    check: str
    ts: str | None
    message: str


@dataclass
class QualityResult:
    status: str  # OK / WARNING / FAILED, the DataQualityReport choices
    bar_count: int
    range_start: datetime | None
    range_end: datetime | None
    is_stale: bool
    issue_counts: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def findings_json(self) -> list[dict[str, Any]]:
        return [asdict(f) for f in self.findings]


def check_bars(
    rows: Sequence[Row],
    *,
    timeframe: Timeframe,
    calendar: MarketCalendar,
    now: datetime,
    outlier_z: float = DEFAULT_OUTLIER_Z,
) -> QualityResult:
    """Every check over ``rows`` (any order); findings capped per check, counts are exact."""
    frame = pd.DataFrame.from_records(
        list(rows), columns=["ts", "open", "high", "low", "close", "volume"]
    )
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    counts: Counter[str] = Counter()
    findings: list[Finding] = []

    def report(check: str, items: list[tuple[Any, str]], total: int | None = None) -> None:
        counts[check] += len(items) if total is None else total
        findings.extend(
            Finding(check, _iso(ts), message) for ts, message in items[:MAX_FINDINGS_PER_CHECK]
        )

    last = frame["ts"].max().to_pydatetime() if len(frame) else None
    fresh = freshness(calendar=calendar, timeframe=timeframe, last_bar=last, now=now)
    if fresh.is_stale:
        report(
            STALE,
            [
                (
                    last,
                    f"newest bar {_iso(last) or 'none'} but a bar at {_iso(fresh.expected)} "
                    f"should exist by {now:%Y-%m-%d %H:%M} UTC",
                )
            ],
        )
    if frame.empty:
        return _result(frame, counts, findings, fresh.is_stale)

    frame = frame.sort_values("ts", kind="stable").reset_index(drop=True)
    duplicated = frame["ts"].duplicated(keep="first")
    report(DUPLICATES, [(ts, "duplicate timestamp") for ts in frame.loc[duplicated, "ts"]])
    prices = frame[["open", "high", "low", "close", "volume"]].astype("float64")
    top, bottom = prices[["open", "close"]].max(axis=1), prices[["open", "close"]].min(axis=1)
    high_bad = prices["high"] < top
    low_bad = (prices["low"] > bottom) | (prices["low"] <= 0)
    report(
        OHLC,
        [
            (r.ts, f"high {r.high} is below max(open {r.open}, close {r.close})")
            for r in frame[high_bad].itertuples()
        ]
        + [
            (r.ts, f"low {r.low} is above min(open {r.open}, close {r.close}) or not positive")
            for r in frame[low_bad & ~high_bad].itertuples()
        ],
    )
    report(
        VOLUME,
        [(r.ts, f"negative volume {r.volume}") for r in frame[prices["volume"] < 0].itertuples()],
    )

    unique = frame[~duplicated]
    missing = _missing_bars(unique["ts"], timeframe, calendar)
    report(GAPS, _gap_runs(missing, timeframe), total=len(missing))
    report(OUTLIERS, _outliers(unique, outlier_z))
    return _result(frame, counts, findings, fresh.is_stale)


def _result(
    frame: pd.DataFrame, counts: Counter[str], findings: list[Finding], stale: bool
) -> QualityResult:
    issues = {check: n for check, n in counts.items() if n}
    status = "FAILED" if FAILING & set(issues) else "WARNING" if issues else "OK"
    return QualityResult(
        status=status,
        bar_count=len(frame),
        range_start=frame["ts"].min().to_pydatetime() if len(frame) else None,
        range_end=frame["ts"].max().to_pydatetime() if len(frame) else None,
        is_stale=stale,
        issue_counts=issues,
        findings=findings,
    )


def expected_bars(
    start: datetime, end: datetime, timeframe: Timeframe, calendar: MarketCalendar
) -> pd.DatetimeIndex:
    """Start times of every bar the calendar says exists between two bar starts."""
    sessions = calendar.sessions(start.date(), end.date())
    if timeframe is Timeframe.DAY_1:
        return pd.DatetimeIndex([day_start(s) for s in sessions])
    step = int(timeframe.duration.total_seconds())
    if not sessions:
        return pd.DatetimeIndex([], tz="UTC")
    minutes = np.concatenate([np.asarray(calendar.session_minutes(s).asi8) for s in sessions])
    seconds = np.unique(minutes // 10**9 // step * step)
    seconds = seconds[(seconds >= int(start.timestamp())) & (seconds <= int(end.timestamp()))]
    return pd.DatetimeIndex(pd.to_datetime(seconds, unit="s", utc=True))


def _missing_bars(
    stamps: pd.Series, timeframe: Timeframe, calendar: MarketCalendar
) -> pd.DatetimeIndex:
    present = pd.DatetimeIndex(pd.to_datetime(stamps, utc=True))
    expected = expected_bars(
        present.min().to_pydatetime(), present.max().to_pydatetime(), timeframe, calendar
    )
    return expected.difference(present)


def _gap_runs(missing: pd.DatetimeIndex, timeframe: Timeframe) -> list[tuple[Any, str]]:
    """Consecutive missing bars as one finding each: 'missing 3 bars 10:01 .. 10:03'."""
    runs: list[tuple[Any, str]] = []
    if missing.empty:
        return runs
    limit = (
        pd.Timedelta(days=4) if timeframe is Timeframe.DAY_1 else pd.Timedelta(timeframe.duration)
    )
    start = prev = missing[0]
    count = 1
    for ts in missing[1:]:
        if ts - prev <= limit:
            prev, count = ts, count + 1
            continue
        runs.append((start, _gap_text(start, prev, count)))
        start = prev = ts
        count = 1
    runs.append((start, _gap_text(start, prev, count)))
    return runs


def _gap_text(first: pd.Timestamp, last: pd.Timestamp, count: int) -> str:
    if count == 1:
        return f"missing bar at {_iso(first)}"
    return f"missing {count} bars from {_iso(first)} to {_iso(last)}"


def _outliers(frame: pd.DataFrame, z: float) -> list[tuple[Any, str]]:
    close = frame["close"].astype("float64").to_numpy()
    if len(close) < 10 or (close <= 0).any():
        return []
    returns = np.diff(np.log(close))
    median = np.median(returns)
    mad = np.median(np.abs(returns - median)) * 1.4826
    if mad == 0:
        return []
    scores = np.abs(returns - median) / mad
    stamps = frame["ts"]
    return [
        (
            stamps.iloc[i + 1],
            f"close moved {np.expm1(returns[i]):+.1%} in one bar ({scores[i]:.0f} robust std devs)",
        )
        for i in np.flatnonzero(scores > z)
    ]


def _iso(ts: Any) -> str | None:
    if ts is None:
        return None
    stamp = pd.Timestamp(ts)
    return (stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")).isoformat()

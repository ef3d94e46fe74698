"""Performance summary of paper or live trading over a period (``GET /v1/metrics/summary``).

The database does the aggregation: the account equity curve is bucketed with a window
function (the last snapshot of each minute over a day, each hour over a week, each day
beyond), and fills are summed per strategy with one
GROUP BY (traded notional, commission, realized P&L, closing fills and winners). The ratios
are computed from the bucketed curve with the backtest engine's formulas.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, DecimalField, ExpressionWrapper, F, Q, RowRange, Sum, Window
from django.db.models.functions import LastValue, TruncDay, TruncHour, TruncMinute
from django.utils import timezone

from quant.backtest.metrics import curve_ratios, periods_per_year
from quant.errors import ValidationError
from trading.models import AccountSnapshot, Fill

PERIODS: dict[str, timedelta | None] = {
    "1d": timedelta(days=1),
    "1w": timedelta(days=7),
    "1m": timedelta(days=30),
    "3m": timedelta(days=91),
    "1y": timedelta(days=365),
    "all": None,
}
ZERO = Decimal("0")
MONEY = DecimalField(max_digits=28, decimal_places=8)


@dataclass(frozen=True)
class StrategyPerformance:
    strategy_id: int
    name: str
    fills: int
    closing_fills: int
    winning_fills: int
    traded_notional: Decimal
    commission: Decimal
    realized_pnl: Decimal

    @property
    def win_rate(self) -> Decimal | None:
        if not self.closing_fills:
            return None
        return (Decimal(self.winning_fills) / Decimal(self.closing_fills)).quantize(
            Decimal("0.0001")
        )


BUCKETS = {"1Min": TruncMinute, "1Hour": TruncHour, "1Day": TruncDay}


def bucket_for(delta: timedelta | None) -> str:
    """Minutes over a day, hours over a week, days beyond."""
    if delta is not None and delta <= timedelta(days=1):
        return "1Min"
    if delta is not None and delta <= timedelta(days=7):
        return "1Hour"
    return "1Day"


def equity_curve(
    *, mode: str, since: datetime | None, bucket: str = "1Day"
) -> list[tuple[datetime, Decimal]]:
    """The account's last equity per minute, hour or day since ``since``, oldest first."""
    truncate = BUCKETS[bucket]("ts")
    snapshots = AccountSnapshot.objects.filter(mode=mode)
    if since is not None:
        snapshots = snapshots.filter(ts__gte=since)
    rows = (
        snapshots.annotate(
            bucket=truncate,
            close=Window(
                LastValue("equity"),
                partition_by=[truncate],
                order_by=F("ts").asc(),
                frame=RowRange(start=None, end=None),
            ),
        )
        .values_list("bucket", "close")
        .distinct()
        .order_by("bucket")
    )
    return [(stamp, close) for stamp, close in rows]


def strategy_performance(*, mode: str, since: datetime | None) -> list[StrategyPerformance]:
    """Fills of the period summed per strategy, in one GROUP BY."""
    fills = Fill.objects.filter(mode=mode)
    if since is not None:
        fills = fills.filter(ts__gte=since)
    closing = Q(closed_quantity__gt=0)
    rows = (
        fills.values("strategy_id", "strategy__name")
        .annotate(
            fills=Count("id"),
            closing=Count("id", filter=closing),
            winners=Count("id", filter=closing & Q(realized_pnl__gt=0)),
            notional=Sum(ExpressionWrapper(F("price") * F("quantity"), output_field=MONEY)),
            commission=Sum("commission"),
            realized=Sum("realized_pnl"),
        )
        .order_by("strategy__name")
    )
    return [
        StrategyPerformance(
            strategy_id=r["strategy_id"],
            name=r["strategy__name"],
            fills=r["fills"],
            closing_fills=r["closing"],
            winning_fills=r["winners"],
            traded_notional=r["notional"] or ZERO,
            commission=r["commission"] or ZERO,
            realized_pnl=r["realized"] or ZERO,
        )
        for r in rows
    ]


def metrics_summary(*, period: str, mode: str, now: datetime | None = None) -> dict[str, Any]:
    """P&L, Sharpe, Sortino, drawdown, win rate and turnover of ``mode`` over ``period``,
    across strategies and per strategy."""
    if period not in PERIODS:
        raise ValidationError(f"period: use one of {', '.join(PERIODS)}, not {period!r}")
    now = now or timezone.now()
    delta = PERIODS[period]
    since = now - delta if delta is not None else None
    bucket = bucket_for(delta)
    curve = equity_curve(mode=mode, since=since, bucket=bucket)
    strategies = strategy_performance(mode=mode, since=since)
    notional = sum((s.traded_notional for s in strategies), ZERO)
    ppy = periods_per_year(bucket)
    ratios = curve_ratios(
        [float(v) for _, v in curve], periods_per_year=ppy, traded_notional=float(notional)
    )
    start_equity = curve[0][1] if curve else None
    end_equity = curve[-1][1] if curve else None
    closing = sum(s.closing_fills for s in strategies)
    winners = sum(s.winning_fills for s in strategies)
    peak = None
    drawdown_curve = []
    for stamp, value in curve:
        peak = value if peak is None or value > peak else peak
        drawdown_curve.append((stamp, (value / peak - 1) * 100 if peak else ZERO))
    return {
        "period": period,
        "mode": mode,
        "bucket": bucket,
        "start": since or (curve[0][0] if curve else None),
        "end": now,
        "start_equity": start_equity,
        "end_equity": end_equity,
        "total_pnl": _difference(start_equity, end_equity),
        "return_pct": _return_pct(start_equity, end_equity),
        "realized_pnl": sum((s.realized_pnl for s in strategies), ZERO),
        "commission": sum((s.commission for s in strategies), ZERO),
        "sharpe": ratios.sharpe,
        "sortino": ratios.sortino,
        "max_drawdown_pct": ratios.max_drawdown_pct,
        "win_rate": (Decimal(winners) / Decimal(closing)).quantize(Decimal("0.0001"))
        if closing
        else None,
        "turnover": ratios.turnover,
        "traded_notional": notional,
        "fills": sum(s.fills for s in strategies),
        "closing_fills": closing,
        "equity_curve": curve,
        "drawdown_curve": [(t, d.quantize(Decimal("0.0001"))) for t, d in drawdown_curve],
        "strategies": strategies,
    }


def _difference(start: Decimal | None, end: Decimal | None) -> Decimal | None:
    return None if start is None or end is None else end - start


def _return_pct(start: Decimal | None, end: Decimal | None) -> Decimal | None:
    if start is None or end is None or not start:
        return None
    return ((end / start - 1) * 100).quantize(Decimal("0.0001"))

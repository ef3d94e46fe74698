"""Backtest reports: a JSON document, and the data of the report page (figures included).

No Django here: the engine's ``BacktestResult`` goes in, plain data comes out.
:meth:`ReportGenerator.generate_json` is the JSON report; :meth:`ReportGenerator.generate_context`
is everything the HTML page shows (:class:`RunReport`: header facts, metric rows, the Plotly
figures, table rows, configs), every value already formatted as text. The page itself is a
Django template rendered by ``backtests.reports``.

Downsampling. Long runs (up to a million bars) would make multi-megabyte JSON documents and
sluggish charts, so every long series is cut to at most ``MAX_POINTS`` (5000) points with a
min/max-per-bucket scheme (:func:`downsample_indices`): the first and last points are always
kept, the inner points are split into ``(MAX_POINTS - 2) // 2`` equal buckets, and each bucket
contributes the index of its lowest and of its highest value. Spikes and troughs therefore
survive (a plain stride would skip them), the global maximum and minimum are always present,
and the line keeps its envelope. The same indices serve the JSON ``equity_curve`` (which then
also carries ``equity_curve_points``, the original count) and the charts.

Text from the result that goes into a figure title or hover label is escaped here (plotly
renders those strings as HTML-like markup); the page template escapes everything else.
"""

from __future__ import annotations

import enum
import functools
import html
import itertools
import json
import math
import re
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import PurePath
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import plotly.graph_objects as go
import plotly.io

from quant.backtest.metrics import drawdown_pct_series
from quant.backtest.results import BacktestResult, EquityCurve, money

MAX_POINTS = 5000  # per JSON curve and per chart line
MAX_TABLE_TRADES = 500
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
GREEN = "#16a34a"
RED = "#dc2626"
BLUE = "#2563eb"


@functools.cache
def _white_template() -> Any:
    """plotly's "plotly_white" template, looked up once (by name plotly builds it anew for each
    figure, the larger part of a small figure's cost)."""
    return plotly.io.templates["plotly_white"]


# label, kind ("money", "pct", "ratio", "int") of each PerformanceMetrics field, in table order
METRIC_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("final_equity", "Final equity", "money"),
    ("total_return", "Total return", "money"),
    ("total_return_pct", "Total return %", "pct"),
    ("cagr_pct", "CAGR", "pct"),
    ("sharpe_ratio", "Sharpe ratio", "ratio"),
    ("sortino_ratio", "Sortino ratio", "ratio"),
    ("max_drawdown", "Max drawdown", "money"),
    ("max_drawdown_pct", "Max drawdown %", "pct"),
    ("total_trades", "Total trades", "int"),
    ("winning_trades", "Winning trades", "int"),
    ("losing_trades", "Losing trades", "int"),
    ("win_rate", "Win rate", "pct"),
    ("avg_win", "Average win", "money"),
    ("avg_loss", "Average loss", "money"),
    ("profit_factor", "Profit factor", "ratio"),
    ("exposure_pct", "Exposure", "pct"),
    ("turnover", "Turnover", "ratio"),
    ("periods_per_year", "Periods per year", "ratio"),
)


# --------------------------------------------------------------------------- page data


@dataclass(frozen=True)
class Fact:
    """One labelled fact of a report's header (or one headline figure)."""

    label: str
    value: str


@dataclass(frozen=True)
class MetricRow:
    """One row of a metrics table: label, formatted value, "pos" / "neg" / "" sign."""

    label: str
    value: str
    sign: str = ""


@dataclass(frozen=True)
class Chart:
    """One Plotly figure of a report page and the id of the element it is drawn in."""

    div_id: str
    figure: go.Figure


@dataclass(frozen=True)
class PositionRow:
    symbol: str
    side: str
    quantity: str
    entry_time: str
    entry_price: str
    last_price: str
    market_value: str
    unrealized_pnl: str
    unrealized_pnl_sign: str


@dataclass(frozen=True)
class TradeRow:
    number: str
    symbol: str
    side: str
    quantity: str
    entry_time: str
    entry_price: str
    exit_time: str
    exit_price: str
    commission: str
    pnl: str
    pnl_sign: str
    return_pct: str
    return_sign: str
    bars_held: str


@dataclass(frozen=True)
class RunReport:
    """Everything the backtest report page shows, formatted (signs are "pos", "neg" or "")."""

    title: str
    strategy: str
    final_equity: str
    total_return: str
    total_return_sign: str
    facts: list[Fact]
    metrics: list[MetricRow]
    charts: list[Chart]
    positions: list[PositionRow]
    trades: list[TradeRow]  # the first ``max_trades``
    trades_note: str
    backtest_config: str  # JSON, indented
    strategy_config: str  # JSON, indented
    generated: str


# --------------------------------------------------------------------------- helpers


def downsample_indices(values: npt.ArrayLike, max_points: int = MAX_POINTS) -> npt.NDArray[np.intp]:
    """Sorted indices of at most ``max_points`` samples of ``values`` that keep its shape.

    Keeps index 0, the last index, and the lowest and highest value of each of
    ``(max_points - 2) // 2`` equal buckets of the points in between (so the global minimum
    and maximum are always kept). NaN values are never chosen as extremes; a bucket of only
    NaN contributes nothing. Series of ``max_points`` or fewer come back whole.
    """
    data = np.asarray(values, dtype=np.float64)
    n = len(data)
    if n <= max_points:
        return np.arange(n, dtype=np.intp)
    if max_points < 4:
        raise ValueError("max_points must be at least 4")
    buckets = (max_points - 2) // 2
    missing = np.isnan(data)
    low = np.where(missing, np.inf, data)
    high = np.where(missing, -np.inf, data)
    edges = np.linspace(1, n - 1, buckets + 1).astype(np.intp)
    chosen: list[int] = [0, n - 1]
    for start, stop in itertools.pairwise(edges.tolist()):
        if stop <= start:
            continue
        lo = start + int(np.argmin(low[start:stop]))
        hi = start + int(np.argmax(high[start:stop]))
        if not missing[lo]:
            chosen.append(lo)
        if not missing[hi]:
            chosen.append(hi)
    return np.unique(np.array(chosen, dtype=np.intp))


def monthly_returns(curve: EquityCurve) -> pd.DataFrame:
    """Return per calendar month in %, as a table: index ``year``, columns ``1..12``.

    The curve is resampled to month ends (last equity of each month; a month without bars
    keeps the previous month's equity, i.e. 0%). Each month's return is its month-end
    equity over the previous month-end equity, minus one; the first month is measured from
    the curve's first point. Months outside the curve are NaN, and so is a month whose base
    equity is not positive.
    """
    columns = pd.Index(range(1, 13), name="month")
    if len(curve) == 0:
        return pd.DataFrame(
            index=pd.Index([], dtype=np.int64, name="year"), columns=columns, dtype=np.float64
        )
    equity = pd.Series(
        np.asarray(curve.equity, dtype=np.float64), index=_naive_index(curve.ts)
    ).sort_index()
    month_end = equity.resample("ME").last().ffill()
    base = month_end.shift(1)
    base.iloc[0] = float(equity.iloc[0])
    returns = (month_end / base.where(base > 0) - 1.0) * 100.0
    index = pd.DatetimeIndex(returns.index)
    frame = pd.DataFrame(
        {"year": index.year, "month": index.month, "ret": returns.to_numpy(dtype=np.float64)}
    )
    table = frame.pivot(index="year", columns="month", values="ret")
    table = table.reindex(columns=columns).astype(np.float64)
    table.index.name = "year"
    return table


def _naive_index(ts: npt.NDArray[np.datetime64]) -> pd.DatetimeIndex:
    """The curve's stamps (UTC, stored without a timezone) as a naive DatetimeIndex."""
    return pd.DatetimeIndex(np.asarray(ts))


def _naive_utc(value: datetime) -> datetime:
    """A datetime in UTC without tzinfo: plotly.js does not understand offsets."""
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _minute(value: datetime) -> str:
    """A time as the report tables show it: UTC, to the minute."""
    return f"{_naive_utc(value):%Y-%m-%d %H:%M}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def jsonable(value: Any) -> Any:
    """``value`` with Decimal, datetime, UUID, enum and NumPy values made JSON-safe.

    Decimal becomes its exact string; non-finite floats become ``None`` (strict JSON has no
    NaN); anything else unknown becomes ``str(value)``.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, uuid.UUID | PurePath):
        return str(value)
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


def _symbols(result: BacktestResult) -> list[str]:
    listed = result.metadata.get("symbols")
    names: Iterable[Any] = listed if isinstance(listed, list | tuple) else ()
    seen: dict[str, None] = {}
    for name in (
        *names,
        *result.closes,
        *(t.symbol for t in result.trades),
        *(p.symbol for p in result.open_positions),
    ):
        seen.setdefault(str(name), None)
    return list(seen)


def _period(result: BacktestResult) -> tuple[datetime | None, datetime | None]:
    start, end = result.start_time, result.end_time
    if (start is None or end is None) and len(result.equity_curve):
        stamps = _naive_index(result.equity_curve.ts)
        first = stamps[0].to_pydatetime().replace(tzinfo=UTC)
        last = stamps[-1].to_pydatetime().replace(tzinfo=UTC)
        start, end = start or first, end or last
    return start, end


def _format_decimal(value: Decimal) -> str:
    return format(value, ",f")


def _format_metric(value: Any, kind: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, Decimal):
        text = _format_decimal(value)
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text}%" if kind == "pct" else text


def _sign_class(value: Decimal | None) -> str:
    if value is None or value == 0:
        return ""
    return "pos" if value > 0 else "neg"


def metric_rows(values: Mapping[str, Any], *, signed: Collection[str] = ()) -> list[MetricRow]:
    """The ``METRIC_FIELDS`` of ``values`` (a metrics object's ``__dict__``), formatted; the
    fields named in ``signed`` carry the sign of their (Decimal) value."""
    rows = []
    for name, label, kind in METRIC_FIELDS:
        value = values.get(name)
        sign = _sign_class(value) if name in signed and isinstance(value, Decimal) else ""
        rows.append(MetricRow(label, _format_metric(value, kind), sign))
    return rows


def generated_stamp() -> str:
    """The time a report page is generated, as it shows: ``2024-01-02 03:04 UTC``."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


# --------------------------------------------------------------------------- report


class ReportGenerator:
    """Turns one ``BacktestResult`` into a JSON document or the data of its report page."""

    def __init__(self, *, max_points: int = MAX_POINTS, max_trades: int = MAX_TABLE_TRADES):
        self.max_points = max_points
        self.max_trades = max_trades

    # ----------------------------------------------------------------------- JSON

    def generate_json(self, result: BacktestResult) -> dict[str, Any]:
        """Everything in the result as JSON-safe data; money and prices as Decimal strings.

        ``equity_curve`` holds at most ``max_points`` points (see the module docstring);
        ``equity_curve_points`` is the curve's full length and ``equity_curve_downsampled``
        tells whether points were left out.
        """
        curve = result.equity_curve
        keep = downsample_indices(curve.equity, self.max_points)
        return {
            "backtest_id": str(result.backtest_id),
            "strategy_id": result.strategy_id,
            "config": jsonable(result.config.as_dict()),
            "strategy_config": jsonable(result.strategy_config),
            "start_time": _iso(result.start_time),
            "end_time": _iso(result.end_time),
            "metadata": jsonable(result.metadata),
            "final_equity": str(result.final_equity),
            "metrics": jsonable(result.metrics.as_dict()),
            "trades": [trade.as_dict() for trade in result.trades],
            "fills": [fill.as_dict() for fill in result.fills],
            "open_positions": [position.as_dict() for position in result.open_positions],
            "equity_curve": self._curve_points(curve, keep),
            "equity_curve_points": len(curve),
            "equity_curve_downsampled": len(keep) < len(curve),
        }

    @staticmethod
    def _curve_points(curve: EquityCurve, keep: npt.NDArray[np.intp]) -> list[dict[str, Any]]:
        stamps = pd.DatetimeIndex(_naive_index(curve.ts)[keep]).tz_localize("UTC")
        return [
            {"ts": ts.isoformat(), "equity": str(money(equity)), "cash": str(money(cash))}
            for ts, equity, cash in zip(
                stamps, curve.equity[keep].tolist(), curve.cash[keep].tolist(), strict=True
            )
        ]

    # ----------------------------------------------------------------------- page context

    def generate_context(self, result: BacktestResult) -> RunReport:
        """What the report page shows, as data: header facts, metrics, figures, tables and
        configs, every value already formatted (``backtests.reports`` renders the page)."""
        metrics = result.metrics
        return RunReport(
            title=f"Backtest report: {result.strategy_id}",
            strategy=result.strategy_id,
            final_equity=_format_decimal(result.final_equity),
            total_return=_format_metric(metrics.total_return_pct, "pct"),
            total_return_sign=_sign_class(metrics.total_return_pct),
            facts=self._facts(result),
            metrics=metric_rows(
                metrics.__dict__, signed=("total_return", "total_return_pct", "cagr_pct")
            ),
            charts=self.charts(result),
            positions=[
                PositionRow(
                    symbol=p.symbol,
                    side=p.side,
                    quantity=_format_decimal(p.quantity),
                    entry_time=_minute(p.entry_time),
                    entry_price=str(p.entry_price),
                    last_price=str(p.last_price),
                    market_value=_format_decimal(p.market_value),
                    unrealized_pnl=_format_decimal(p.unrealized_pnl),
                    unrealized_pnl_sign=_sign_class(p.unrealized_pnl),
                )
                for p in result.open_positions
            ],
            trades=[
                TradeRow(
                    number=str(number),
                    symbol=t.symbol,
                    side=t.side,
                    quantity=_format_decimal(t.quantity),
                    entry_time=_minute(t.entry_time),
                    entry_price=str(t.entry_price),
                    exit_time=_minute(t.exit_time),
                    exit_price=str(t.exit_price),
                    commission=_format_decimal(t.commission),
                    pnl=_format_decimal(t.pnl),
                    pnl_sign=_sign_class(t.pnl),
                    return_pct=f"{t.return_pct}%",
                    return_sign=_sign_class(t.return_pct),
                    bars_held=str(t.bars_held),
                )
                for number, t in enumerate(result.trades[: self.max_trades], start=1)
            ],
            trades_note=self._trades_note(len(result.trades)),
            backtest_config=json.dumps(jsonable(result.config.as_dict()), indent=2),
            strategy_config=json.dumps(jsonable(result.strategy_config), indent=2, sort_keys=True),
            generated=generated_stamp(),
        )

    def charts(self, result: BacktestResult) -> list[Chart]:
        """Equity, drawdown, one close-and-trades chart per symbol, monthly returns."""
        charts = [
            Chart("chart-equity", self._equity_figure(result)),
            Chart("chart-drawdown", self._drawdown_figure(result)),
        ]
        used: set[str] = set()
        for symbol in _symbols(result):
            slug = re.sub(r"[^A-Za-z0-9_-]+", "-", symbol).strip("-") or "symbol"
            div_id = f"chart-price-{slug}"
            if div_id in used:
                div_id = f"{div_id}-{len(used)}"
            used.add(div_id)
            charts.append(Chart(div_id, self._price_figure(result, symbol)))
        charts.append(Chart("chart-monthly", self._monthly_figure(result)))
        return charts

    @staticmethod
    def _facts(result: BacktestResult) -> list[Fact]:
        start, end = _period(result)
        period = (
            f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC"
            if start is not None and end is not None
            else "—"
        )
        facts = [
            Fact("Strategy", result.strategy_id),
            Fact("Symbols", ", ".join(_symbols(result)) or "—"),
            Fact("Period", period),
            Fact("Timeframe", result.config.timeframe),
            Fact("Bars", f"{len(result.equity_curve):,}"),
            Fact("Initial capital", _format_decimal(result.config.initial_capital)),
        ]
        mode = result.metadata.get("engine_mode")
        if mode:
            facts.append(Fact("Engine mode", str(mode)))
        facts.append(Fact("Backtest id", str(result.backtest_id)))
        return facts

    def _trades_note(self, total: int) -> str:
        if not total:
            return "No closed trades."
        if total > self.max_trades:
            return (
                f"Showing the first {self.max_trades:,} of {total:,} trades; "
                "the JSON report holds them all."
            )
        return f"{total:,} closed trades."

    # ----------------------------------------------------------------------- figures

    @staticmethod
    def _layout(figure: go.Figure, title: str, *, height: int = 380, y_title: str = "") -> None:
        figure.update_layout(
            template=_white_template(),
            title={"text": html.escape(title), "x": 0.01, "xanchor": "left"},
            height=height,
            margin={"l": 70, "r": 24, "t": 56, "b": 44},
            hovermode="x unified",
            legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1},
            font={"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
        )
        figure.update_yaxes(title_text=y_title)

    def _equity_figure(self, result: BacktestResult) -> go.Figure:
        curve = result.equity_curve
        keep = downsample_indices(curve.equity, self.max_points)
        figure = go.Figure(
            go.Scatter(
                x=_naive_index(curve.ts)[keep],
                y=curve.equity[keep],
                mode="lines",
                name="Equity",
                line={"color": BLUE, "width": 1.6},
                hovertemplate="%{y:,.2f}<extra>Equity</extra>",
            )
        )
        figure.add_hline(
            y=float(result.config.initial_capital),
            line={"color": "#9ca3af", "width": 1, "dash": "dash"},
            annotation_text="initial capital",
            annotation_position="bottom right",
            annotation_font={"color": "#6b7280", "size": 11},
        )
        self._layout(figure, _titled("Equity curve", len(keep), len(curve)), y_title="Equity")
        return figure

    def _drawdown_figure(self, result: BacktestResult) -> go.Figure:
        curve = result.equity_curve
        percent = drawdown_pct_series(curve.equity)
        keep = downsample_indices(percent, self.max_points)
        figure = go.Figure(
            go.Scatter(
                x=_naive_index(curve.ts)[keep],
                y=percent[keep],
                mode="lines",
                name="Drawdown",
                fill="tozeroy",
                line={"color": RED, "width": 1.2},
                fillcolor="rgba(220, 38, 38, 0.18)",
                hovertemplate="%{y:.2f}%<extra>Drawdown</extra>",
            )
        )
        self._layout(
            figure, _titled("Drawdown (%)", len(keep), len(curve)), height=300, y_title="%"
        )
        figure.update_yaxes(ticksuffix="%", rangemode="tozero")
        return figure

    def _price_figure(self, result: BacktestResult, symbol: str) -> go.Figure:
        """Close line with entry and exit markers.

        Buys are green triangles up and sells red triangles down: a long enters with a buy
        and exits with a sell; a short (mirrored) enters with a sell and exits with a buy.
        Entries are filled markers, exits outlined ones, so the four kinds stay apart.
        Positions still open at the end get their entry marker too.
        """
        figure = go.Figure()
        curve = result.equity_curve
        closes = result.closes.get(symbol)
        shown = total = 0
        if closes is not None and len(closes) == len(curve):
            close = np.asarray(closes, dtype=np.float64)
            keep = downsample_indices(close, self.max_points)
            keep = keep[~np.isnan(close[keep])]
            shown, total = len(keep), int(np.count_nonzero(~np.isnan(close)))
            figure.add_trace(
                go.Scatter(
                    x=_naive_index(curve.ts)[keep],
                    y=close[keep],
                    mode="lines",
                    name="Close",
                    line={"color": "#475569", "width": 1.2},
                    hovertemplate="%{y:,.4~f}<extra>Close</extra>",
                )
            )
        # (x, y, hover text) per marker kind
        kinds: dict[str, list[tuple[datetime, float, str]]] = {
            "Long entry (buy)": [],
            "Long exit (sell)": [],
            "Short entry (sell)": [],
            "Short exit (buy)": [],
        }
        for t in (t for t in result.trades if t.symbol == symbol):
            side = "Long" if t.side == "long" else "Short"
            entry_kind = "Long entry (buy)" if side == "Long" else "Short entry (sell)"
            exit_kind = "Long exit (sell)" if side == "Long" else "Short exit (buy)"
            text = f"{side} {t.quantity} · P&L {t.pnl}"
            kinds[entry_kind].append((_naive_utc(t.entry_time), float(t.entry_price), text))
            kinds[exit_kind].append((_naive_utc(t.exit_time), float(t.exit_price), text))
        for p in (p for p in result.open_positions if p.symbol == symbol):
            entry_kind = "Long entry (buy)" if p.side == "long" else "Short entry (sell)"
            text = f"{p.side} {p.quantity} · still open"
            kinds[entry_kind].append((_naive_utc(p.entry_time), float(p.entry_price), text))
        styles = {
            "Long entry (buy)": ("triangle-up", GREEN, True),
            "Long exit (sell)": ("triangle-down", RED, False),
            "Short entry (sell)": ("triangle-down", RED, True),
            "Short exit (buy)": ("triangle-up", GREEN, False),
        }
        markers_cut = False
        for name, points in kinds.items():
            if not points:
                continue
            if len(points) > self.max_points:  # plain stride: markers have no shape to keep
                step = math.ceil(len(points) / self.max_points)
                points = points[::step]
                markers_cut = True
            shape, color, filled = styles[name]
            figure.add_trace(
                go.Scatter(
                    x=[p[0] for p in points],
                    y=[p[1] for p in points],
                    mode="markers",
                    name=name,
                    text=[p[2] for p in points],
                    marker={
                        "symbol": shape if filled else f"{shape}-open",
                        "color": color,
                        "size": 11,
                        "line": {"width": 2 if not filled else 1, "color": color},
                    },
                    hovertemplate="%{y:,.4~f}<br>%{text}<extra>" + name + "</extra>",
                )
            )
        title = _titled(f"{symbol}: close and trades", shown, total)
        if markers_cut:
            title += " (trade markers thinned)"
        self._layout(figure, title, height=420, y_title="Price")
        figure.update_layout(hovermode="closest")
        return figure

    def _monthly_figure(self, result: BacktestResult) -> go.Figure:
        table = monthly_returns(result.equity_curve)
        years = [str(year) for year in table.index]
        values = table.to_numpy(dtype=np.float64)
        z: list[list[float | None]] = [
            [None if math.isnan(v) else round(v, 4) for v in row] for row in values.tolist()
        ]
        # preformatted cell labels: a texttemplate would print a bare "%" in empty months
        text = [["" if v is None else f"{v:.2f}%" for v in row] for row in z]
        labelled = len(years) <= 40
        finite = values[~np.isnan(values)]
        bound = float(np.max(np.abs(finite))) if finite.size else 1.0
        figure = go.Figure(
            go.Heatmap(
                z=z,
                x=list(MONTHS),
                y=years,
                colorscale="RdYlGn",
                zmin=-bound,  # symmetric: 0% sits at the middle (yellow)
                zmax=bound,
                text=text if labelled else None,
                texttemplate="%{text}" if labelled else "",
                textfont={"size": 11},
                hovertemplate="%{y} %{x}: %{z:.2f}%<extra></extra>",
                xgap=2,
                ygap=2 if labelled else 0,
                colorbar={"ticksuffix": "%", "thickness": 12},
            )
        )
        # very long runs (centuries of synthetic bars) get thin rows without labels, so the
        # chart stays under about 2000 px
        row = 34 if labelled else max(4, 1900 // len(years))
        height = max(220, 110 + row * len(years))
        self._layout(figure, "Monthly returns (%)", height=height)
        figure.update_layout(hovermode="closest")
        figure.update_yaxes(type="category", autorange="reversed", showgrid=False)
        figure.update_xaxes(side="top", showgrid=False, type="category")
        figure.update_layout(margin={"t": 80})
        return figure


def _titled(title: str, shown: int, total: int) -> str:
    if shown < total:
        return f"{title} ({shown:,} of {total:,} points shown)"
    return title

"""Reads of the dashboard's run pages: the run list, one run's metrics, trades and charts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from django.utils.dateparse import parse_datetime

from backtests.models import BacktestRun, BacktestTrade, EngineModeChoice, RunStatus
from backtests.selectors import (
    backtest_runs_list,
    backtest_trades_list,
    walk_forward_runs_list,
    walk_forward_windows,
)
from common.charts import GREEN, GREY, RED, drawdown_figure, equity_figure, figure_data, layout
from marketdata.domain import Timeframe
from marketdata.selectors import bars_frame
from quant.backtest.report import MAX_POINTS, METRIC_FIELDS, downsample_indices
from quant.backtest.walkforward_plan import Objective
from research.models import Strategy

RUNS_SHOWN = 100
TRADES_SHOWN = 500
# metrics whose sign is good or bad news (coloured); a drawdown is a size, not a gain
SIGNED_METRICS = {"total_return", "total_return_pct", "cagr_pct", "avg_win", "avg_loss"}


def runs_filtered(*, strategy_id: int | None, status: str | None) -> dict[str, Any]:
    runs = backtest_runs_list(strategy_id=strategy_id, status=status or None)
    return {
        "runs": list(runs[:RUNS_SHOWN]),
        "runs_total": runs.count(),
        "active_runs": any(r.status in (RunStatus.QUEUED, RunStatus.RUNNING) for r in runs[:20]),
    }


def run_form_choices() -> dict[str, Any]:
    return {
        "strategies": list(
            Strategy.objects.filter(is_active=True)
            .select_related("current_version")
            .order_by("name")
        ),
        "statuses": RunStatus.choices,
        "engine_modes": EngineModeChoice.choices,
    }


def metric_rows(metrics: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The run's metrics in the report's order, each with its label and kind."""
    if not metrics:
        return []
    return [
        {
            "name": name,
            "label": label,
            "kind": kind,
            "value": metrics.get(name),
            "signed": name in SIGNED_METRICS,
        }
        for name, label, kind in METRIC_FIELDS
        if name in metrics
    ]


def run_summary(run: BacktestRun) -> dict[str, Any]:
    trades = backtest_trades_list(run=run)
    return {
        "run": run,
        "metrics": metric_rows(run.metrics),
        "trades": list(trades[:TRADES_SHOWN]),
        "trades_total": trades.count(),
        "initial_capital": (run.backtest_config or {}).get("initial_capital"),
    }


def run_equity(run: BacktestRun) -> tuple[list[datetime], list[float]]:
    return curve_points(run.equity_curve or [])


def curve_points(points: list[dict[str, Any]]) -> tuple[list[datetime], list[float]]:
    """A stored ``[{"ts", "equity"}]`` curve (a backtest's, a walk-forward's) as chart axes."""
    stamps: list[datetime] = []
    values: list[float] = []
    for point in points:
        ts = parse_datetime(str(point.get("ts")))
        if ts is None:
            continue
        stamps.append(ts.astimezone(UTC).replace(tzinfo=None))  # plotly.js reads no offsets
        values.append(float(point["equity"]))  # a chart coordinate; tables show the Decimal
    return stamps, values


def run_charts(run: BacktestRun) -> list[dict[str, Any]]:
    """Equity, drawdown and, per symbol, the close with the trades on it (succeeded runs)."""
    if run.status != RunStatus.SUCCEEDED or not run.equity_curve:
        return []
    stamps, equity = run_equity(run)
    capital = (run.backtest_config or {}).get("initial_capital")
    charts = [
        {
            "id": "equity",
            "figure": equity_figure(
                stamps, equity, title="Equity curve", baseline=float(capital) if capital else None
            ),
        },
        {"id": "drawdown", "figure": drawdown_figure(stamps, equity)},
    ]
    trades = list(backtest_trades_list(run=run))
    for index, symbol in enumerate(run.symbols or []):
        charts.append(
            {"id": f"price-{index}", "figure": price_figure(run, symbol, trades), "symbol": symbol}
        )
    for chart in charts:
        chart["script_id"] = f"figure-{chart['id']}"
    return charts


def price_figure(run: BacktestRun, symbol: str, trades: list[BacktestTrade]) -> dict[str, Any]:
    figure = go.Figure()
    try:
        frame = bars_frame(
            symbol=symbol,
            timeframe=Timeframe(run.timeframe),
            start=run.data_start,
            end=run.data_end,
        )
    except ValueError:
        frame = None
    if frame is not None and len(frame):
        close = frame["close"].to_numpy()
        keep = downsample_indices(close, MAX_POINTS)
        figure.add_trace(
            go.Scatter(
                x=pd.DatetimeIndex(frame.index[keep]).tz_convert(None),
                y=close[keep],
                mode="lines",
                name="Close",
                line={"color": GREY, "width": 1.2},
                hovertemplate="%{y:,.4~f}<extra>Close</extra>",
            )
        )
    kinds: dict[str, list[tuple[datetime, float, str]]] = {
        "Buy": [],
        "Sell": [],
    }
    for trade in (t for t in trades if t.symbol == symbol):
        text = f"{trade.side} {trade.quantity.normalize():f} · P&L {trade.pnl}"
        entry, exit_ = ("Buy", "Sell") if trade.side == "long" else ("Sell", "Buy")
        kinds[entry].append((trade.entry_time, float(trade.entry_price), f"entry {text}"))
        kinds[exit_].append((trade.exit_time, float(trade.exit_price), f"exit {text}"))
    styles = {"Buy": ("triangle-up", GREEN), "Sell": ("triangle-down", RED)}
    for name, points in kinds.items():
        if not points:
            continue
        step = max(1, len(points) // MAX_POINTS + (len(points) % MAX_POINTS > 0))
        points = points[::step]
        shape, color = styles[name]
        figure.add_trace(
            go.Scatter(
                x=[p[0].replace(tzinfo=None) for p in points],
                y=[p[1] for p in points],
                mode="markers",
                name=name,
                text=[p[2] for p in points],
                marker={"symbol": shape, "color": color, "size": 10},
                hovertemplate="%{y:,.4~f}<br>%{text}<extra>" + name + "</extra>",
            )
        )
    layout(figure, f"{symbol}: close and trades", height=360, y_title="Price")
    figure.update_layout(hovermode="closest")
    return figure_data(figure)


# --- walk-forward ------------------------------------------------------------------------

WF_SHOWN = 100
OBJECTIVES = [(o.value, o.value.replace("_", " ").capitalize()) for o in Objective]


def walk_forward_filtered(*, strategy_id: int | None, status: str | None) -> dict[str, Any]:
    """The walk-forward runs of ``GET /v1/walk-forward`` (same selector), newest first."""

    runs = walk_forward_runs_list(strategy_id=strategy_id, status=status or None).defer(
        "equity_curve"
    )
    shown = list(runs[:WF_SHOWN])
    return {
        "wf_runs": shown,
        "wf_total": runs.count(),
        "wf_active": any(r.status in (RunStatus.QUEUED, RunStatus.RUNNING) for r in shown[:20]),
    }


def walk_forward_summary(run: Any) -> dict[str, Any]:
    """One walk-forward run: its windows, the stitched out-of-sample metrics, overfitting."""

    result = run.result or {}
    overfitting = result.get("overfitting") or {}
    return {
        "run": run,
        "windows": walk_forward_windows(run=run),
        "metrics": metric_rows(result.get("aggregated_metrics")),
        "overfitting": overfitting,
        "parameter_stability": result.get("parameter_stability") or {},
        "wf_config": run.wf_config or {},
        "flagged": result.get("flagged_windows"),
    }


def walk_forward_charts(run: Any) -> list[dict[str, Any]]:
    """The stitched out-of-sample equity and its drawdown (succeeded runs)."""
    if run.status != RunStatus.SUCCEEDED or not run.equity_curve:
        return []
    stamps, equity = curve_points(run.equity_curve)
    charts = [
        {
            "id": "wf-equity",
            "figure": equity_figure(stamps, equity, title="Out-of-sample equity (stitched)"),
        },
        {"id": "wf-drawdown", "figure": drawdown_figure(stamps, equity)},
    ]
    for chart in charts:
        chart["script_id"] = f"figure-{chart['id']}"
    return charts

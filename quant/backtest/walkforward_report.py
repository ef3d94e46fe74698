"""Walk-forward reports: a JSON document, and the data of the report page (figures included).

No Django here. :func:`generate_json` is the JSON report; :func:`generate_context` is
everything the HTML page shows (:class:`WalkForwardReport`), every value already formatted as
text; ``backtests.reports`` renders the page from it with the backtest report's skeleton.
Helpers come from the backtest report (``quant.backtest.report``): long curves are
downsampled the same way (at most ``MAX_POINTS`` points, extremes kept), and text from the
result that goes into a figure is escaped there.

Charts: the stitched out-of-sample equity (window boundaries marked, flagged windows shaded),
the parameters chosen per window, the in-sample vs out-of-sample objective per window, and
the distribution of the CSCV logits behind the PBO.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from quant.backtest.report import (
    BLUE,
    GREEN,
    MAX_POINTS,
    RED,
    Chart,
    Fact,
    MetricRow,
    ReportGenerator,
    _naive_index,
    _titled,
    downsample_indices,
    generated_stamp,
    jsonable,
    metric_rows,
)
from quant.backtest.walkforward import WalkForwardResult

PALETTE = ("#2563eb", "#16a34a", "#d97706", "#9333ea", "#0891b2", "#dc2626", "#4b5563")
_layout = ReportGenerator._layout


@dataclass(frozen=True)
class WindowRow:
    number: str
    in_sample: str
    out_of_sample: str
    params: str
    in_sample_objective: str
    out_of_sample_objective: str
    in_sample_trades: str
    out_of_sample_trades: str
    flag: str


@dataclass(frozen=True)
class StabilityRow:
    name: str
    most_common: str
    share: str
    distinct: str
    coefficient_of_variation: str


@dataclass(frozen=True)
class WalkForwardReport:
    """Everything the walk-forward report page shows, formatted."""

    title: str
    strategy: str
    facts: list[Fact]
    verdict: str
    verdict_level: str  # "ok", "warn" or "bad"
    verdict_figures: list[Fact]
    flagged_note: str  # "" without flagged windows
    metrics: list[MetricRow]
    charts: list[Chart]
    windows: list[WindowRow]
    stability: list[StabilityRow]
    overfitting_details: str  # JSON, indented
    generated: str


def generate_json(result: WalkForwardResult, *, max_points: int = MAX_POINTS) -> dict[str, Any]:
    """``result.as_dict()`` with the stitched curve cut to ``max_points`` points (extremes
    kept); ``equity_curve_points`` is its full length."""
    document = result.as_dict()
    keep = downsample_indices(result.equity_curve.equity, max_points)
    points = document["equity_curve"]
    document["equity_curve"] = [points[i] for i in keep.tolist()]
    document["equity_curve_points"] = len(points)
    document["equity_curve_downsampled"] = len(keep) < len(points)
    return document


def generate_context(
    result: WalkForwardResult, *, max_points: int = MAX_POINTS
) -> WalkForwardReport:
    """What the report page shows: header facts, verdict, aggregated metrics, figures,
    windows and parameter stability."""
    stats = result.overfitting.as_dict()
    pbo = stats["pbo"]
    level = (
        "bad" if pbo is not None and pbo > 0.5 else ("warn" if pbo is None or pbo >= 0.25 else "ok")
    )
    flagged = ""
    if result.flagged_windows:
        flagged = (
            f"{len(result.flagged_windows)} of {len(result.windows)} "
            "window(s) flagged: no grid point reached the minimum of trades in sample; "
            "they hold cash out of sample."
        )
    return WalkForwardReport(
        title=f"Walk-forward report: {result.strategy_config.name}",
        strategy=result.strategy_config.name,
        facts=_facts(result),
        verdict=stats["verdict"],
        verdict_level=level,
        verdict_figures=_verdict_figures(stats),
        flagged_note=flagged,
        metrics=metric_rows(result.metrics.__dict__),
        charts=charts(result, max_points=max_points),
        windows=_window_rows(result),
        stability=_stability_rows(result),
        overfitting_details=json.dumps(jsonable(stats["details"]), indent=2),
        generated=generated_stamp(),
    )


def charts(result: WalkForwardResult, *, max_points: int = MAX_POINTS) -> list[Chart]:
    """Stitched equity, parameters per window, IS vs OOS objective, and the CSCV logits
    when there is a PBO."""
    charts = [
        Chart("chart-wf-equity", _equity_figure(result, max_points)),
        Chart("chart-wf-params", _params_figure(result)),
        Chart("chart-wf-scatter", _scatter_figure(result)),
    ]
    if result.overfitting.pbo is not None:
        charts.append(Chart("chart-wf-logits", _logits_figure(result)))
    return charts


# --------------------------------------------------------------------------- page parts


def _facts(result: WalkForwardResult) -> list[Fact]:
    wf, windows = result.wf_config, result.windows
    period = (
        f"{windows[0].out_of_sample_start:%Y-%m-%d} → {windows[-1].out_of_sample_end:%Y-%m-%d}"
        if windows
        else "—"
    )
    grid = "; ".join(f"{k} = {', '.join(map(str, v))}" for k, v in wf.parameter_grid.items())
    return [
        Fact("Strategy class", result.strategy_config.class_name),
        Fact("Symbols", ", ".join(result.strategy_config.symbols)),
        Fact("Out-of-sample period", period),
        Fact("Windows", f"{len(windows)} ({len(result.flagged_windows)} flagged)"),
        Fact("Window type", wf.window_type.value),
        Fact(
            "In sample / out of sample / step",
            f"{wf.in_sample_days} / {wf.out_of_sample_days} / {wf.step_days} bars",
        ),
        Fact("Objective", wf.objective.value),
        Fact("Minimum trades", str(wf.min_trades_required)),
        Fact("Grid", f"{result.grid_size} point(s): {grid or 'the config params only'}"),
    ]


def _verdict_figures(stats: dict[str, Any]) -> list[Fact]:
    dsr, pbo, deg = stats["deflated_sharpe"], stats["pbo"], stats["degradation"]
    return [
        Fact("PBO (CSCV)", "—" if pbo is None else f"{pbo:.2f}"),
        Fact("Deflated Sharpe ratio", "—" if dsr is None else f"{dsr:.2f}"),
        Fact(
            "OOS / IS objective",
            "—" if not deg or deg["ratio"] is None else f"{deg['ratio']:.2f}",
        ),
        Fact("Windows with OOS < IS", "—" if not deg else f"{deg['share_worse']:.0%}"),
    ]


def _params_text(params: dict[str, Any] | None) -> str:
    if params is None:
        return "—"
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "(config params)"


def _number(value: float | None) -> str:
    if value is None or not np.isfinite(value):
        return "∞" if value is not None and value > 0 else "—"
    return f"{value:,.4f}"


def _window_rows(result: WalkForwardResult) -> list[WindowRow]:
    rows = []
    for w in result.windows:
        is_trades = w.in_sample.trades if w.in_sample else None
        oos_trades = w.out_of_sample.trades if w.out_of_sample else None
        rows.append(
            WindowRow(
                number=str(w.plan.index),
                in_sample=f"{w.in_sample_start:%Y-%m-%d} → {w.in_sample_end:%Y-%m-%d}",
                out_of_sample=(
                    f"{w.out_of_sample_start:%Y-%m-%d} → {w.out_of_sample_end:%Y-%m-%d}"
                ),
                params=_params_text(w.best_params),
                in_sample_objective=_number(w.in_sample_objective),
                out_of_sample_objective=_number(w.out_of_sample_objective),
                in_sample_trades="—" if is_trades is None else str(is_trades),
                out_of_sample_trades="—" if oos_trades is None else str(oos_trades),
                flag=w.flag,
            )
        )
    return rows


def _stability_rows(result: WalkForwardResult) -> list[StabilityRow]:
    rows = []
    for name, s in result.parameter_stability.items():
        share, cv = s["most_common_share"], s["coefficient_of_variation"]
        rows.append(
            StabilityRow(
                name=name,
                most_common=str(s["most_common"]),
                share="—" if share is None else f"{share:.0%}",
                distinct=str(s["distinct"]),
                coefficient_of_variation="—" if cv is None else f"{cv:.3f}",
            )
        )
    return rows


# --------------------------------------------------------------------------- figures


def _equity_figure(result: WalkForwardResult, max_points: int) -> go.Figure:
    curve = result.equity_curve
    keep = downsample_indices(curve.equity, max_points)
    figure = go.Figure(
        go.Scatter(
            x=_naive_index(curve.ts)[keep],
            y=curve.equity[keep],
            mode="lines",
            name="Out-of-sample equity",
            line={"color": BLUE, "width": 1.6},
            hovertemplate="%{y:,.2f}<extra>Equity</extra>",
        )
    )
    # Shapes as plain dicts in one update: add_vline/add_vrect validate the whole layout again
    # on each call, which made this figure the slowest part of gathering a run.
    shapes: list[dict[str, Any]] = []
    for w in result.windows:
        start, end = _naive(w.out_of_sample_start), _naive(w.out_of_sample_end)
        if w.flag:
            shapes.append(
                {
                    "type": "rect",
                    "xref": "x",
                    "yref": "y domain",
                    "x0": start,
                    "x1": end,
                    "y0": 0,
                    "y1": 1,
                    "fillcolor": RED,
                    "opacity": 0.12,
                    "line": {"width": 0},
                    "layer": "below",
                }
            )
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "y domain",
                "x0": start,
                "x1": start,
                "y0": 0,
                "y1": 1,
                "line": {"color": "#cbd5e1", "width": 1, "dash": "dot"},
            }
        )
    capital = float(result.backtest_config.initial_capital)
    shapes.append(
        {
            "type": "line",
            "xref": "x domain",
            "yref": "y",
            "x0": 0,
            "x1": 1,
            "y0": capital,
            "y1": capital,
            "line": {"color": "#9ca3af", "width": 1, "dash": "dash"},
        }
    )
    figure.update_layout(shapes=shapes)
    title = _titled("Stitched out-of-sample equity", len(keep), len(curve))
    _layout(figure, title, y_title="Equity")
    return figure


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _params_figure(result: WalkForwardResult) -> go.Figure:
    names = list(result.parameter_stability)
    figure = make_subplots(
        rows=max(len(names), 1), cols=1, shared_xaxes=True, subplot_titles=names or None
    )
    x = [w.plan.index for w in result.windows]
    for row, name in enumerate(names, start=1):
        values = result.parameter_stability[name]["values"]
        numeric = all(isinstance(v, int | float) or v is None for v in values)
        figure.add_trace(
            go.Scatter(
                x=x,
                y=values if numeric else [None if v is None else str(v) for v in values],
                mode="lines+markers",
                name=name,
                line={"color": PALETTE[(row - 1) % len(PALETTE)], "shape": "hv"},
                hovertemplate="window %{x}: %{y}<extra>" + html.escape(name) + "</extra>",
            ),
            row=row,
            col=1,
        )
    _layout(figure, "Parameters chosen per window", height=max(300, 160 * len(names) + 80))
    figure.update_layout(hovermode="closest", showlegend=False)
    figure.update_xaxes(title_text="window", dtick=1, row=max(len(names), 1), col=1)
    return figure


def _scatter_figure(result: WalkForwardResult) -> go.Figure:
    points = [
        (w, w.in_sample_objective, w.out_of_sample_objective)
        for w in result.windows
        if w.in_sample_objective is not None
        and w.out_of_sample_objective is not None
        and np.isfinite(w.in_sample_objective)
        and np.isfinite(w.out_of_sample_objective)
    ]
    figure = go.Figure()
    if points:
        xs = [p[1] for p in points]
        ys = [p[2] for p in points]
        low, high = min(xs + ys), max(xs + ys)
        figure.add_trace(
            go.Scatter(
                x=[low, high],
                y=[low, high],
                mode="lines",
                name="OOS = IS",
                line={"color": "#9ca3af", "dash": "dash"},
                hoverinfo="skip",
            )
        )
        figure.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="markers",
                name="window",
                text=[
                    f"window {p[0].plan.index}: {_params_text(p[0].best_params)}" for p in points
                ],
                marker={
                    "size": 10,
                    "color": [GREEN if y >= x else RED for x, y in zip(xs, ys, strict=True)],
                },
                hovertemplate="%{text}<br>IS %{x:.4f} · OOS %{y:.4f}<extra></extra>",
            )
        )
    objective = result.wf_config.objective.value
    _layout(figure, f"In-sample vs out-of-sample {objective} per window")
    figure.update_layout(hovermode="closest")
    figure.update_xaxes(title_text=f"in-sample {objective}")
    figure.update_yaxes(title_text=f"out-of-sample {objective}")
    return figure


def _logits_figure(result: WalkForwardResult) -> go.Figure:
    pbo = result.overfitting.pbo
    assert pbo is not None
    # binned here: a histogram trace would carry every one of the (many) logits
    counts, edges = np.histogram(np.asarray(pbo.logits, dtype=np.float64), bins=40)
    figure = go.Figure(
        go.Bar(
            x=((edges[:-1] + edges[1:]) / 2).tolist(),
            y=counts.tolist(),
            width=float(edges[1] - edges[0]) if len(edges) > 1 else None,
            marker={"color": BLUE},
            name="splits",
            hovertemplate="logit %{x:.2f}: %{y} splits<extra></extra>",
        )
    )
    figure.add_vline(x=0, line={"color": RED, "width": 2})
    _layout(
        figure,
        f"CSCV logits: out-of-sample rank of the in-sample best (≤ 0: PBO {pbo.value:.2f})",
        height=320,
    )
    figure.update_layout(hovermode="closest", showlegend=False)
    return figure

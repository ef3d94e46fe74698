"""Walk-forward reports: a JSON document and one standalone, offline HTML page with Plotly.

No Django here. The helpers, styles and the inline plotly.js come from the backtest report
(``quant.backtest.report``): plotly.js is embedded once, each figure renders without it,
long curves are downsampled the same way (at most ``MAX_POINTS`` points, extremes kept) and
every piece of text from the result is escaped.

Charts: the stitched out-of-sample equity (window boundaries marked, flagged windows shaded),
the parameters chosen per window, the in-sample vs out-of-sample objective per window, and
the distribution of the CSCV logits behind the PBO.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from quant.backtest.report import (
    _CSS,
    BLUE,
    GREEN,
    MAX_POINTS,
    METRIC_FIELDS,
    RED,
    ReportGenerator,
    _format_metric,
    _naive_index,
    _plotly_js,
    _td,
    _thead,
    _titled,
    downsample_indices,
    jsonable,
)
from quant.backtest.walkforward import WalkForwardResult

PALETTE = ("#2563eb", "#16a34a", "#d97706", "#9333ea", "#0891b2", "#dc2626", "#4b5563")
_layout = ReportGenerator._layout


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


def generate_html(result: WalkForwardResult, *, max_points: int = MAX_POINTS) -> str:
    """One offline page: header, verdict, aggregated metrics, charts, windows, stability."""
    charts = [
        (_equity_figure(result, max_points), "chart-wf-equity"),
        (_params_figure(result), "chart-wf-params"),
        (_scatter_figure(result), "chart-wf-scatter"),
    ]
    if result.overfitting.pbo is not None:
        charts.append((_logits_figure(result), "chart-wf-logits"))
    chart_html = "\n".join(
        '<section class="card chart">'
        + figure.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            config={"displaylogo": False, "responsive": True},
            default_width="100%",
            default_height=f"{figure.layout.height or 380}px",
        )
        + "</section>"
        for figure, div_id in charts
    )
    return _PAGE.format(
        title=html.escape(f"Walk-forward report: {result.strategy_config.name}"),
        css=_CSS + _EXTRA_CSS,
        plotly_js=_plotly_js(),
        header=_header_html(result),
        verdict=_verdict_html(result),
        metrics=_metrics_html(result),
        charts=chart_html,
        windows=_windows_html(result),
        stability=_stability_html(result),
        generated=html.escape(datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
    )


# --------------------------------------------------------------------------- HTML parts


def _header_html(result: WalkForwardResult) -> str:
    wf, windows = result.wf_config, result.windows
    period = (
        f"{windows[0].out_of_sample_start:%Y-%m-%d} → {windows[-1].out_of_sample_end:%Y-%m-%d}"
        if windows
        else "—"
    )
    grid = "; ".join(f"{k} = {', '.join(map(str, v))}" for k, v in wf.parameter_grid.items())
    facts = [
        ("Strategy class", result.strategy_config.class_name),
        ("Symbols", ", ".join(result.strategy_config.symbols)),
        ("Out-of-sample period", period),
        ("Windows", f"{len(windows)} ({len(result.flagged_windows)} flagged)"),
        ("Window type", wf.window_type.value),
        (
            "In sample / out of sample / step",
            f"{wf.in_sample_days} / {wf.out_of_sample_days} / {wf.step_days} bars",
        ),
        ("Objective", wf.objective.value),
        ("Minimum trades", str(wf.min_trades_required)),
        ("Grid", f"{result.grid_size} point(s): {grid or 'the config params only'}"),
    ]
    items = "".join(
        f"<div><dt>{html.escape(label)}</dt><dd>{html.escape(value)}</dd></div>"
        for label, value in facts
    )
    return (
        '<header class="card">'
        f"<h1>{html.escape(result.strategy_config.name)}</h1>"
        f'<dl class="facts">{items}</dl></header>'
    )


def _verdict_html(result: WalkForwardResult) -> str:
    stats = result.overfitting.as_dict()
    dsr, pbo, deg = stats["deflated_sharpe"], stats["pbo"], stats["degradation"]
    figures = [
        ("PBO (CSCV)", "—" if pbo is None else f"{pbo:.2f}"),
        ("Deflated Sharpe ratio", "—" if dsr is None else f"{dsr:.2f}"),
        (
            "OOS / IS objective",
            "—" if not deg or deg["ratio"] is None else f"{deg['ratio']:.2f}",
        ),
        ("Windows with OOS < IS", "—" if not deg else f"{deg['share_worse']:.0%}"),
    ]
    cells = "".join(
        f'<div><span class="label">{html.escape(k)}</span>'
        f'<span class="big">{html.escape(v)}</span></div>'
        for k, v in figures
    )
    level = (
        "bad" if pbo is not None and pbo > 0.5 else ("warn" if pbo is None or pbo >= 0.25 else "ok")
    )
    flagged = ""
    if result.flagged_windows:
        flagged = (
            f'<p class="note">{len(result.flagged_windows)} of {len(result.windows)} '
            "window(s) flagged: no grid point reached the minimum of trades in sample; "
            "they hold cash out of sample.</p>"
        )
    return (
        f'<section class="card verdict {level}"><h2>Overfitting verdict</h2>'
        f'<p id="verdict">{html.escape(stats["verdict"])}</p>'
        f'<div class="headline">{cells}</div>{flagged}</section>'
    )


def _metrics_html(result: WalkForwardResult) -> str:
    values = result.metrics.__dict__
    rows = "".join(
        f"<tr><th>{html.escape(label)}</th>"
        f'<td class="num">{html.escape(_format_metric(values.get(name), kind))}</td></tr>'
        for name, label, kind in METRIC_FIELDS
    )
    return (
        '<section class="card"><h2>Aggregated out-of-sample metrics</h2>'
        '<p class="note">Of the stitched out-of-sample equity curve and all out-of-sample '
        "trades.</p>"
        f'<table class="metrics">{rows}</table></section>'
    )


def _params_text(params: dict[str, Any] | None) -> str:
    if params is None:
        return "—"
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "(config params)"


def _number(value: float | None) -> str:
    if value is None or not np.isfinite(value):
        return "∞" if value is not None and value > 0 else "—"
    return f"{value:,.4f}"


def _windows_html(result: WalkForwardResult) -> str:
    head = (
        "#",
        "In sample",
        "Out of sample",
        "Best params",
        "IS objective",
        "OOS objective",
        "IS trades",
        "OOS trades",
        "Flag",
    )
    rows = []
    for w in result.windows:
        is_trades = w.in_sample.trades if w.in_sample else None
        oos_trades = w.out_of_sample.trades if w.out_of_sample else None
        cells = [
            _td(str(w.plan.index), "num muted"),
            _td(f"{w.in_sample_start:%Y-%m-%d} → {w.in_sample_end:%Y-%m-%d}"),
            _td(f"{w.out_of_sample_start:%Y-%m-%d} → {w.out_of_sample_end:%Y-%m-%d}"),
            _td(_params_text(w.best_params)),
            _td(_number(w.in_sample_objective), "num"),
            _td(_number(w.out_of_sample_objective), "num"),
            _td("—" if is_trades is None else str(is_trades), "num"),
            _td("—" if oos_trades is None else str(oos_trades), "num"),
            _td(w.flag, "neg" if w.flag else ""),
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        '<section class="card"><h2>Windows</h2>'
        f'<div class="scroll"><table class="data">{_thead(head)}'
        f"<tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _stability_html(result: WalkForwardResult) -> str:
    if not result.parameter_stability:
        return ""
    head = ("Parameter", "Most common", "Share", "Distinct values", "Coefficient of variation")
    rows = []
    for name, s in result.parameter_stability.items():
        share, cv = s["most_common_share"], s["coefficient_of_variation"]
        cells = [
            _td(name),
            _td(str(s["most_common"])),
            _td("—" if share is None else f"{share:.0%}", "num"),
            _td(str(s["distinct"]), "num"),
            _td("—" if cv is None else f"{cv:.3f}", "num"),
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    details = json.dumps(jsonable(result.overfitting.as_dict()["details"]), indent=2)
    return (
        '<section class="card"><h2>Parameter stability</h2>'
        f'<table class="data">{_thead(head)}<tbody>{"".join(rows)}</tbody></table>'
        "<h3>Overfitting statistics</h3>"
        f"<pre>{html.escape(details)}</pre></section>"
    )


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


_EXTRA_CSS = """
h1::before { content: "Walk-forward report"; }
.verdict { border-left: 6px solid var(--muted); }
.verdict.ok { border-left-color: var(--pos); }
.verdict.warn { border-left-color: #d97706; }
.verdict.bad { border-left-color: var(--neg); }
.verdict p#verdict { font-size: 15px; margin: 0 0 14px; }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
<script type="text/javascript">{plotly_js}</script>
</head>
<body>
<main>
{header}
{verdict}
{metrics}
{charts}
{windows}
{stability}
<footer>Generated {generated}. Times are UTC. Self-contained: works offline.</footer>
</main>
</body>
</html>
"""

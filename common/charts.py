"""Plotly figures for the dashboard pages, as plain JSON data for ``Plotly.newPlot``.

The pages embed each figure with ``json_script`` and ``static/js/dashboard.js`` draws it with
the plotly.min.js served from ``static/`` (no CDN). Colours of text and grid follow the page's
theme in the browser, so figures carry a transparent background and no template.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import plotly.graph_objects as go

from quant.backtest.metrics import drawdown_pct_series
from quant.backtest.report import MAX_POINTS, downsample_indices

BLUE = "#2563eb"
RED = "#dc2626"
GREEN = "#16a34a"
GREY = "#64748b"


def figure_data(figure: go.Figure) -> dict[str, Any]:
    """The figure as JSON-safe data (plotly's encoder: NumPy arrays and datetimes)."""
    data: dict[str, Any] = json.loads(figure.to_json())
    data.setdefault("layout", {}).pop("template", None)
    return data


def layout(figure: go.Figure, title: str, *, height: int = 340, y_title: str = "") -> go.Figure:
    figure.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 14}},
        height=height,
        margin={"l": 60, "r": 16, "t": 44, "b": 36},
        hovermode="x unified",
        showlegend=True,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1},
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        font={"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
    )
    figure.update_yaxes(title_text=y_title, zeroline=False)
    return figure


def thinned(ts: Sequence[datetime], values: Sequence[float]) -> tuple[list[datetime], list[float]]:
    """At most ``MAX_POINTS`` points that keep the line's peaks and troughs."""
    keep = downsample_indices(np.asarray(values, dtype=np.float64), MAX_POINTS).tolist()
    return [ts[i] for i in keep], [values[i] for i in keep]


def equity_figure(
    ts: Sequence[datetime],
    equity: Sequence[float],
    *,
    title: str = "Equity",
    baseline: float | None = None,
) -> dict[str, Any]:
    x, y = thinned(ts, equity)
    figure = go.Figure(
        go.Scatter(
            x=x,
            y=y,
            mode="lines",
            name="Equity",
            line={"color": BLUE, "width": 1.6},
            hovertemplate="%{y:,.2f}<extra>Equity</extra>",
        )
    )
    if baseline is not None:
        figure.add_hline(y=baseline, line={"color": GREY, "width": 1, "dash": "dash"})
    return figure_data(layout(figure, title, y_title="Equity"))


def drawdown_figure(ts: Sequence[datetime], equity: Sequence[float]) -> dict[str, Any]:
    x, y = thinned(ts, drawdown_pct_series(equity).tolist())
    figure = go.Figure(
        go.Scatter(
            x=x,
            y=y,
            mode="lines",
            name="Drawdown",
            fill="tozeroy",
            line={"color": RED, "width": 1.2},
            fillcolor="rgba(220, 38, 38, 0.18)",
            hovertemplate="%{y:.2f}%<extra>Drawdown</extra>",
        )
    )
    layout(figure, "Drawdown (%)", height=240, y_title="%")
    figure.update_yaxes(ticksuffix="%")
    return figure_data(figure)

"""The standalone HTML report files of a backtest run and of a walk-forward run.

The core (``quant.backtest.report``, ``quant.backtest.walkforward_report``) gathers what a
page shows as data, its Plotly figures included; the Django templates under
``templates/backtests/report/`` lay it out (``base.html`` is the skeleton both pages share).

Each file is self-contained and works offline: plotly.js (about 4.8 MB) is inlined once in
the page's head, and each chart is a sized div plus a short script that hands the figure's
JSON to ``Plotly.newPlot``. Autoescaping stays on; only the bundle and the figure JSON are
marked safe, both made unable to close their ``<script>`` element first.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import plotly.offline
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from quant.backtest.report import MAX_POINTS, MAX_TABLE_TRADES, Chart, ReportGenerator
from quant.backtest.results import BacktestResult
from quant.backtest.walkforward import WalkForwardResult
from quant.backtest.walkforward_report import generate_context

RUN_TEMPLATE = "backtests/report/run.html"
WALK_FORWARD_TEMPLATE = "backtests/report/walk_forward.html"
DEFAULT_CHART_HEIGHT = 380  # px, for a figure without a layout height

# "<", ">" and "&" only occur inside JSON strings, where their \u escapes mean the same.
_SCRIPT_UNSAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def run_report_html(
    result: BacktestResult,
    *,
    max_points: int = MAX_POINTS,
    max_trades: int = MAX_TABLE_TRADES,
) -> str:
    """The backtest report page: header, metrics, charts, open positions, trades, config."""
    report = ReportGenerator(max_points=max_points, max_trades=max_trades).generate_context(result)
    return _render(RUN_TEMPLATE, report, report.charts)


def walk_forward_report_html(result: WalkForwardResult, *, max_points: int = MAX_POINTS) -> str:
    """The walk-forward report page: header, verdict, aggregated metrics, charts, windows,
    parameter stability."""
    report = generate_context(result, max_points=max_points)
    return _render(WALK_FORWARD_TEMPLATE, report, report.charts)


def _render(template: str, report: Any, charts: list[Chart]) -> str:
    return render_to_string(
        template,
        {"report": report, "charts": [_chart(c) for c in charts], "plotly_js": plotly_js()},
    )


def _chart(chart: Chart) -> dict[str, Any]:
    figure = chart.figure
    return {
        "id": chart.div_id,
        "id_json": script_json(json.dumps(chart.div_id)),
        "height": f"{figure.layout.height or DEFAULT_CHART_HEIGHT}px",
        "figure": script_json(figure.to_json()),
    }


def script_json(text: str) -> SafeString:
    """JSON text made safe to sit inside a ``<script>`` element (plotly's encoder already
    escapes these characters; this does not rely on it)."""
    return mark_safe(text.translate(_SCRIPT_UNSAFE))


@functools.cache
def plotly_js() -> SafeString:
    """The plotly.js bundle, unable to close its own ``<script>`` element early."""
    js: str = plotly.offline.get_plotlyjs()
    return mark_safe(re.sub(r"</(script)", r"<\\/\1", js, flags=re.IGNORECASE))

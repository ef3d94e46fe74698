"""The backtest reports: JSON content and bounds, the page data, the offline HTML page
(rendered by ``backtests.reports``), monthly returns.

No database: the result is built by hand and the reports are pure functions of it.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pandas as pd
import plotly.offline
import pytest

from backtests.reports import run_report_html
from quant.backtest.config import BacktestConfig
from quant.backtest.metrics import drawdown_pct_series
from quant.backtest.report import (
    MAX_POINTS,
    ReportGenerator,
    downsample_indices,
    monthly_returns,
)
from quant.backtest.results import (
    BacktestResult,
    EquityCurve,
    FillRecord,
    OpenPosition,
    PerformanceMetrics,
    Trade,
)

START = np.datetime64("2021-01-04T00:00:00", "ns")
DAY = np.timedelta64(1, "D").astype("timedelta64[ns]")
BACKTEST_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def make_curve(equity: list[float] | np.ndarray, start: np.datetime64 = START) -> EquityCurve:
    values = np.asarray(equity, dtype=np.float64)
    stamps = (start + DAY * np.arange(len(values))).astype("datetime64[ns]")
    return EquityCurve(
        ts=stamps,
        equity=values,
        cash=values - 500.0,
        gross_exposure=np.full(len(values), 500.0),
    )


def make_trades() -> list[Trade]:
    return [
        Trade(
            symbol="AAPL",
            side="long",
            quantity=Decimal("10"),
            entry_time=datetime(2021, 1, 5, tzinfo=UTC),
            entry_price=Decimal("100.5"),
            exit_time=datetime(2021, 1, 9, tzinfo=UTC),
            exit_price=Decimal("110.25"),
            commission=Decimal("2.00"),
            pnl=Decimal("95.50"),
            bars_held=4,
        ),
        Trade(
            symbol="MSFT",
            side="short",
            quantity=Decimal("5"),
            entry_time=datetime(2021, 1, 6, tzinfo=UTC),
            entry_price=Decimal("200"),
            exit_time=datetime(2021, 1, 10, tzinfo=UTC),
            exit_price=Decimal("210"),
            commission=Decimal("2.00"),
            pnl=Decimal("-52.00"),
            bars_held=4,
        ),
    ]


def make_metrics(final_equity: Decimal = Decimal("100043.50")) -> PerformanceMetrics:
    return PerformanceMetrics(
        total_return=Decimal("43.50"),
        total_return_pct=Decimal("0.0435"),
        sharpe_ratio=Decimal("1.2345"),
        max_drawdown=Decimal("1234.56"),
        max_drawdown_pct=Decimal("1.2311"),
        win_rate=Decimal("50.0000"),
        total_trades=2,
        winning_trades=1,
        losing_trades=1,
        avg_win=Decimal("95.50"),
        avg_loss=Decimal("-52.00"),
        profit_factor=Decimal("1.8365"),
        sortino_ratio=None,
        cagr_pct=Decimal("3.1416"),
        exposure_pct=Decimal("45.4545"),
        turnover=Decimal("0.0251"),
        final_equity=final_equity,
        periods_per_year=Decimal("252"),
    )


def make_result(
    *, strategy_id: str = "sma_demo", curve: EquityCurve | None = None, trades: int = 0
) -> BacktestResult:
    curve = curve or make_curve([100_000, 100_500, 99_800, 101_000, 100_200, 100_043.5] * 2)
    n = len(curve)
    closes = {
        "AAPL": np.linspace(100.0, 112.0, n),
        "MSFT": np.concatenate(([np.nan], np.linspace(200.0, 212.0, n - 1))),
    }
    trade_list = make_trades()
    if trades:
        trade_list = [trade_list[i % 2] for i in range(trades)]
    return BacktestResult(
        strategy_id=strategy_id,
        config=BacktestConfig(
            initial_capital=Decimal("100000"),
            start_date=datetime(2021, 1, 1, tzinfo=UTC),
        ),
        strategy_config={"name": strategy_id, "params": {"fast": 3, "slow": 5}},
        equity_curve=curve,
        trades=trade_list,
        fills=[
            FillRecord(
                symbol="AAPL",
                side="buy",
                quantity=Decimal("10"),
                price=Decimal("100.5"),
                commission=Decimal("1.00"),
                ts=datetime(2021, 1, 5, tzinfo=UTC),
                intent="entry",
                order_id=1,
            )
        ],
        open_positions=[
            OpenPosition(
                symbol="AAPL",
                side="long",
                quantity=Decimal("3"),
                entry_time=datetime(2021, 1, 12, tzinfo=UTC),
                entry_price=Decimal("111"),
                last_price=Decimal("112"),
                market_value=Decimal("336.00"),
                unrealized_pnl=Decimal("2.00"),
            )
        ],
        metrics=make_metrics(),
        start_time=datetime(2021, 1, 4, tzinfo=UTC),
        end_time=datetime(2021, 1, 15, tzinfo=UTC),
        metadata={"engine_mode": "event", "symbols": ["AAPL", "MSFT"], "ratio": np.float64(0.5)},
        closes=closes,
        backtest_id=BACKTEST_ID,
    )


# --------------------------------------------------------------------------- JSON


def test_json_round_trips_with_exact_fields() -> None:
    result = make_result()
    doc = json.loads(json.dumps(ReportGenerator().generate_json(result)))

    assert doc["backtest_id"] == str(BACKTEST_ID)
    assert doc["strategy_id"] == "sma_demo"
    assert doc["config"] == result.config.as_dict()
    assert doc["config"]["initial_capital"] == "100000"
    assert doc["config"]["start_date"] == "2021-01-01T00:00:00+00:00"
    assert doc["strategy_config"] == {"name": "sma_demo", "params": {"fast": 3, "slow": 5}}
    assert doc["start_time"] == "2021-01-04T00:00:00+00:00"
    assert doc["end_time"] == "2021-01-15T00:00:00+00:00"
    assert doc["metadata"] == {"engine_mode": "event", "symbols": ["AAPL", "MSFT"], "ratio": 0.5}
    assert doc["final_equity"] == "100043.50"
    assert doc["metrics"]["sharpe_ratio"] == "1.2345"
    assert doc["metrics"]["sortino_ratio"] is None
    assert doc["metrics"]["total_trades"] == 2
    assert doc["trades"] == [
        {
            "symbol": "AAPL",
            "side": "long",
            "quantity": "10",
            "entry_time": "2021-01-05T00:00:00+00:00",
            "entry_price": "100.5",
            "exit_time": "2021-01-09T00:00:00+00:00",
            "exit_price": "110.25",
            "commission": "2.00",
            "pnl": "95.50",
            "return_pct": "9.5025",
            "bars_held": 4,
        },
        {
            "symbol": "MSFT",
            "side": "short",
            "quantity": "5",
            "entry_time": "2021-01-06T00:00:00+00:00",
            "entry_price": "200",
            "exit_time": "2021-01-10T00:00:00+00:00",
            "exit_price": "210",
            "commission": "2.00",
            "pnl": "-52.00",
            "return_pct": "-5.2000",
            "bars_held": 4,
        },
    ]
    assert doc["fills"][0]["price"] == "100.5"
    assert doc["fills"][0]["ts"] == "2021-01-05T00:00:00+00:00"
    assert doc["open_positions"] == [
        {
            "symbol": "AAPL",
            "side": "long",
            "quantity": "3",
            "entry_time": "2021-01-12T00:00:00+00:00",
            "entry_price": "111",
            "last_price": "112",
            "market_value": "336.00",
            "unrealized_pnl": "2.00",
        }
    ]
    assert doc["equity_curve_points"] == 12
    assert doc["equity_curve"] == list(result.equity_curve.points())
    assert doc["equity_curve"][0] == {
        "ts": "2021-01-04T00:00:00+00:00",
        "equity": "100000.00",
        "cash": "99500.00",
    }
    assert doc["equity_curve"][5]["equity"] == "100043.50"


def test_json_is_strict_json_with_nan_and_odd_metadata() -> None:
    result = make_result()
    result.metadata.update({"nan": float("nan"), "when": datetime(2021, 1, 1, tzinfo=UTC)})
    text = json.dumps(ReportGenerator().generate_json(result), allow_nan=False)
    doc = json.loads(text)
    assert doc["metadata"]["nan"] is None
    assert doc["metadata"]["when"] == "2021-01-01T00:00:00+00:00"


def test_long_curve_is_downsampled_keeping_first_last_and_extremes() -> None:
    rng = np.random.default_rng(3)
    n = 50_000
    equity = 100_000 + np.cumsum(rng.normal(0, 50, n))
    equity[12_345] = 250_000.0  # a one-bar spike a stride would miss
    equity[33_333] = 10_000.0  # and a one-bar crash
    result = make_result(curve=make_curve(equity))

    doc = json.loads(json.dumps(ReportGenerator().generate_json(result)))
    points = doc["equity_curve"]

    assert doc["equity_curve_points"] == n
    assert doc["equity_curve_downsampled"] is True
    assert len(points) <= MAX_POINTS
    assert len(points) > MAX_POINTS // 2  # still a detailed curve
    full = list(result.equity_curve.points())
    assert points[0] == full[0]
    assert points[-1] == full[-1]
    assert {"ts": full[12_345]["ts"], "equity": "250000.00", "cash": "249500.00"} in points
    assert {"ts": full[33_333]["ts"], "equity": "10000.00", "cash": "9500.00"} in points
    stamps = [p["ts"] for p in points]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)


@pytest.mark.parametrize("n", [0, 1, 5, MAX_POINTS, MAX_POINTS + 1, 123_457])
def test_downsample_indices_bounds(n: int) -> None:
    values = np.sin(np.arange(n) / 100.0) * np.arange(n)
    keep = downsample_indices(values)
    assert len(keep) <= MAX_POINTS
    if n <= MAX_POINTS:
        assert keep.tolist() == list(range(n))
    else:
        assert keep[0] == 0
        assert keep[-1] == n - 1
        assert int(np.argmax(values)) in keep
        assert int(np.argmin(values)) in keep
        assert np.all(np.diff(keep) > 0)


def test_downsample_indices_skips_nan_and_honours_small_caps() -> None:
    values = np.arange(1000, dtype=np.float64)
    values[100:400] = np.nan
    values[700] = -5.0
    keep = downsample_indices(values, 20)
    assert len(keep) <= 20
    assert 700 in keep and 999 in keep and 0 in keep
    assert not any(100 <= i < 400 for i in keep.tolist())


# --------------------------------------------------------------------------- page data


def test_page_data_is_formatted_text_and_figures() -> None:
    report = ReportGenerator().generate_context(make_result())

    assert report.title == "Backtest report: sma_demo"
    assert report.final_equity == "100,043.50"
    assert (report.total_return, report.total_return_sign) == ("0.0435%", "pos")
    facts = {fact.label: fact.value for fact in report.facts}
    assert facts["Period"] == "2021-01-04 00:00 → 2021-01-15 00:00 UTC"
    assert facts["Symbols"] == "AAPL, MSFT" and facts["Engine mode"] == "event"
    rows = {row.label: row for row in report.metrics}
    assert rows["Sortino ratio"].value == "—"
    assert (rows["CAGR"].value, rows["CAGR"].sign) == ("3.1416%", "pos")
    assert (rows["Average loss"].value, rows["Average loss"].sign) == ("-52.00", "")
    assert [chart.div_id for chart in report.charts] == [
        "chart-equity",
        "chart-drawdown",
        "chart-price-AAPL",
        "chart-price-MSFT",
        "chart-monthly",
    ]
    short = report.trades[1]
    assert (short.number, short.side, short.pnl, short.pnl_sign) == ("2", "short", "-52.00", "neg")
    assert (short.return_pct, short.entry_time) == ("-5.2000%", "2021-01-06 00:00")
    assert report.positions[0].unrealized_pnl_sign == "pos"
    assert report.trades_note == "2 closed trades."
    assert json.loads(report.strategy_config) == {
        "name": "sma_demo",
        "params": {"fast": 3, "slow": 5},
    }


def test_page_data_caps_the_trades() -> None:
    report = ReportGenerator(max_trades=3).generate_context(make_result(trades=4))
    assert len(report.trades) == 3
    assert report.trades_note == (
        "Showing the first 3 of 4 trades; the JSON report holds them all."
    )
    empty = make_result()
    empty.trades.clear()
    assert ReportGenerator().generate_context(empty).trades_note == "No closed trades."


# --------------------------------------------------------------------------- HTML


def test_html_is_offline_with_one_div_per_chart() -> None:
    page = run_report_html(make_result())

    assert page.startswith("<!DOCTYPE html>")
    # no external script or stylesheet at all (the bundle itself names cdn.plot.ly as a
    # default topojson URL, so the check is on src/href attributes, not on the string)
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.IGNORECASE)
    assert not re.search(r"<link[^>]*href\s*=\s*[\"']https?:", page, re.IGNORECASE)
    assert 'src="https://cdn.plot.ly' not in page
    # the plotly.js bundle, inline, exactly once
    bundle = plotly.offline.get_plotlyjs()
    assert len(page) > len(bundle)
    assert page.count(bundle[:2000]) == 1
    assert page.count(bundle[-2000:]) == 1

    chart_ids = [
        "chart-equity",
        "chart-drawdown",
        "chart-price-AAPL",
        "chart-price-MSFT",
        "chart-monthly",
    ]
    for chart_id in chart_ids:
        assert page.count(f'<div id="{chart_id}" class="plotly-graph-div"') == 1, chart_id
    assert page.count('class="plotly-graph-div"') == len(chart_ids)
    assert page.count("Plotly.newPlot(") == len(chart_ids)


def test_html_shows_header_metrics_and_trades() -> None:
    page = run_report_html(make_result())

    assert "<h1>sma_demo</h1>" in page
    assert "AAPL, MSFT" in page  # symbols
    assert "2021-01-04 00:00 → 2021-01-15 00:00 UTC" in page  # period
    assert "100,043.50" in page  # final equity
    for shown in (
        "0.0435%",  # total return %
        "1.2345",  # sharpe
        "1,234.56",  # max drawdown
        "1.2311%",  # max drawdown %
        "50.0000%",  # win rate
        "1.8365",  # profit factor
        "3.1416%",  # CAGR
        "45.4545%",  # exposure
        "0.0251",  # turnover
        "-52.00",  # average loss
    ):
        assert shown in page, shown
    assert "Sortino ratio</th>" in page and "—" in page  # None shows as a dash
    # trades table and open positions
    assert "110.25" in page and "9.5025%" in page and "-5.2000%" in page
    assert "2 closed trades." in page
    assert "Open positions at the end" in page
    # trade markers: long entries green triangles up, the short's exit a buy (triangle up)
    assert '"name":"Long entry (buy)"' in page
    assert '"name":"Short entry (sell)"' in page
    assert '"symbol":"triangle-up"' in page and '"symbol":"triangle-down"' in page


def test_html_escapes_text_from_the_result() -> None:
    result = make_result(strategy_id="<script>alert(1)</script>")
    page = run_report_html(result)

    assert "<script>alert(1)</script>" not in page
    assert "<h1>&lt;script&gt;alert(1)&lt;/script&gt;</h1>" in page
    assert "<title>Backtest report: &lt;script&gt;alert(1)&lt;/script&gt;</title>" in page
    assert "&quot;name&quot;: &quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;" in page  # config


def test_html_figure_json_cannot_close_its_script() -> None:
    # a symbol reaches the figures (trace data, titles) as well as the header and tables
    symbol = "</script><script>alert(1)</script>"
    result = make_result()
    result.closes[symbol] = result.closes.pop("MSFT")
    result.metadata["symbols"] = ["AAPL", symbol]
    page = run_report_html(result)

    assert "<script>alert(1)" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the header
    # one script element per chart after the bundle, each closed where it should be
    body = page.split("</head>", 1)[1]
    charts = body.count('class="plotly-graph-div"')
    assert charts == 6  # equity, drawdown, monthly, AAPL, the odd symbol, MSFT (traded)
    assert body.count("<script>") == body.count("</script>") == charts
    assert '<div id="chart-price-script-script-alert-1-script" class="plotly-graph-div"' in page


def test_html_caps_the_trades_table() -> None:
    page = run_report_html(make_result(trades=600))

    assert "Showing the first 500 of 600 trades" in page
    body = page.split("<h2>Trades</h2>", 1)[1]
    assert body.count('<td class="num muted">') == 500


def test_html_downsamples_long_charts() -> None:
    n = 30_000
    equity = 100_000 + np.cumsum(np.random.default_rng(5).normal(0, 30, n))
    page = run_report_html(make_result(curve=make_curve(equity)))
    assert f"of {n:,} points shown" in page
    assert len(page) < len(plotly.offline.get_plotlyjs()) + 2_000_000


# --------------------------------------------------------------------------- helpers


def test_monthly_returns_on_a_three_month_curve() -> None:
    # Nov 2020: 100 -> 110 (+10%); Dec: 110 -> 99 (-10%); Jan 2021: 99 -> 108.9 (+10%)
    stamps = np.array(
        [
            "2020-11-02",
            "2020-11-16",
            "2020-11-30",
            "2020-12-10",
            "2020-12-31",
            "2021-01-05",
            "2021-01-15",
        ],
        dtype="datetime64[ns]",
    )
    equity = np.array([100.0, 130.0, 110.0, 90.0, 99.0, 120.0, 108.9])
    curve = EquityCurve(ts=stamps, equity=equity, cash=equity, gross_exposure=np.zeros(7))

    table = monthly_returns(curve)

    assert table.index.name == "year"
    assert table.index.tolist() == [2020, 2021]
    assert table.columns.equals(pd.Index(range(1, 13)))
    assert table.loc[2020, 11] == pytest.approx(10.0)
    assert table.loc[2020, 12] == pytest.approx(-10.0)
    assert table.loc[2021, 1] == pytest.approx(10.0)
    assert int(table.notna().sum().sum()) == 3


def test_monthly_returns_of_an_empty_curve() -> None:
    empty = np.array([], dtype=np.float64)
    curve = EquityCurve(
        ts=np.array([], dtype="datetime64[ns]"), equity=empty, cash=empty, gross_exposure=empty
    )
    table = monthly_returns(curve)
    assert table.empty
    assert table.columns.equals(pd.Index(range(1, 13)))


def test_drawdown_pct_series() -> None:
    curve = make_curve([100.0, 120.0, 90.0, 130.0])
    assert drawdown_pct_series(curve.equity).tolist() == pytest.approx([0.0, 0.0, -25.0, 0.0])
    assert drawdown_pct_series([0.0, -5.0, 10.0, 5.0]).tolist() == pytest.approx(
        [0.0, 0.0, 0.0, -50.0]
    )
    assert drawdown_pct_series([]).tolist() == []

"""Golden tests of the backtest metrics: every expected number is worked out by hand.

No database: ``compute_metrics`` is a pure function of the curve and the trades.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from marketdata.domain import Timeframe
from quant.backtest.metrics import compute_metrics, periods_per_year
from quant.backtest.results import EquityCurve, PerformanceMetrics, Trade
from quant.errors import ValidationError

START = np.datetime64("2021-01-01T00:00:00", "ns")
DAY = np.timedelta64(1, "D").astype("timedelta64[ns]")


def curve(
    equity: Sequence[float],
    exposure: Sequence[float] | None = None,
    ts: Sequence[np.datetime64] | None = None,
) -> EquityCurve:
    """A curve of daily bars from 2021-01-01 unless timestamps are given."""
    values = np.array(equity, dtype=np.float64)
    gross = np.zeros(len(values)) if exposure is None else np.array(exposure, dtype=np.float64)
    stamps = (
        START + DAY * np.arange(len(values)) if ts is None else np.array(ts, dtype="datetime64[ns]")
    )
    return EquityCurve(
        ts=stamps.astype("datetime64[ns]"),
        equity=values,
        cash=values - gross,
        gross_exposure=gross,
    )


def trade(pnl: str) -> Trade:
    opened = datetime(2021, 1, 4, 21, tzinfo=UTC)
    return Trade(
        symbol="AAPL",
        side="long",
        quantity=Decimal("10"),
        entry_time=opened,
        entry_price=Decimal("100"),
        exit_time=opened + timedelta(days=1),
        exit_price=Decimal("100") + Decimal(pnl) / 10,
        commission=Decimal("0"),
        pnl=Decimal(pnl),
        bars_held=1,
    )


def metrics(
    equity: EquityCurve,
    trades: Sequence[Trade] = (),
    *,
    initial: str = "100000",
    timeframe: str = "1Day",
    traded_notional: float = 0.0,
) -> PerformanceMetrics:
    return compute_metrics(
        equity=equity,
        trades=trades,
        initial_capital=Decimal(initial),
        periods_per_year=periods_per_year(timeframe),
        traded_notional=traded_notional,
    )


# --- 1. no trades, flat equity ---------------------------------------------------------


def test_flat_curve_without_trades() -> None:
    m = metrics(curve([100000.0] * 5))

    assert m.final_equity == Decimal("100000.00")
    assert str(m.total_return) == "0.00"
    assert str(m.total_return_pct) == "0.0000"
    # every return is 0: std == 0 and downside deviation == 0
    assert m.sharpe_ratio is None
    assert m.sortino_ratio is None
    assert str(m.max_drawdown) == "0.00"
    assert str(m.max_drawdown_pct) == "0.0000"
    assert (m.total_trades, m.winning_trades, m.losing_trades) == (0, 0, 0)
    assert str(m.win_rate) == "0.0000"
    assert m.avg_win is None and m.avg_loss is None
    assert m.profit_factor is None
    assert str(m.exposure_pct) == "0.0000"
    assert str(m.turnover) == "0.0000"
    # 4 days span, final == initial: (1)^(1/years) - 1 = 0
    assert str(m.cagr_pct) == "0.0000"
    assert m.periods_per_year == Decimal("252")


# --- 2. all losers ---------------------------------------------------------------------


def test_all_losing_trades() -> None:
    # initial 1000; three round trips lose 10, 20, 30: 1000 -> 990 -> 990 -> 970 -> 940
    m = metrics(
        curve([1000.0, 990.0, 990.0, 970.0, 940.0], exposure=[500, 0, 500, 0, 0]),
        [trade("-10"), trade("-20"), trade("-30")],
        initial="1000",
        traded_notional=3000.0,
    )

    assert (m.total_trades, m.winning_trades, m.losing_trades) == (3, 0, 3)
    assert m.win_rate == Decimal("0.0000")
    assert m.avg_win is None
    assert str(m.avg_loss) == "-20.00"  # (-10 - 20 - 30) / 3
    # gross profit 0 / |gross loss| 60 = 0: losses exist, so the ratio is defined (and 0)
    assert str(m.profit_factor) == "0.0000"
    assert str(m.total_return) == "-60.00"
    assert str(m.total_return_pct) == "-6.0000"  # -60 / 1000 * 100
    # peak stays 1000 (the initial capital); deepest point 940
    assert str(m.max_drawdown) == "60.00"
    assert str(m.max_drawdown_pct) == "6.0000"
    assert str(m.exposure_pct) == "40.0000"  # 2 of 5 bars
    # mean equity (1000 + 990 + 990 + 970 + 940) / 5 = 978; 3000 / 978 = 3.067484...
    assert str(m.turnover) == "3.0675"
    assert m.sharpe_ratio is not None and m.sharpe_ratio < 0
    assert m.sortino_ratio is not None and m.sortino_ratio < 0


# --- 3. an open position at the end ----------------------------------------------------


def test_open_position_at_the_end_counts_in_equity_not_in_trades() -> None:
    # initial 10000; bar 0 buys 10 @ 100 with a 1.00 commission: cash 8999 + 1000 = 9999;
    # the closes then go 110 and 120: 8999 + 1100 = 10099, 8999 + 1200 = 10199 (unrealized)
    m = metrics(
        curve([9999.0, 10099.0, 10199.0], exposure=[1000.0, 1100.0, 1200.0]),
        [],
        initial="10000",
        traded_notional=1000.0,
    )

    assert m.total_trades == 0
    assert m.final_equity == Decimal("10199.00")
    assert str(m.total_return) == "199.00"
    assert str(m.total_return_pct) == "1.9900"  # 199 / 10000 * 100
    # the commission on bar 0 is a drawdown from the initial capital: 1.00 = 0.01 %
    assert str(m.max_drawdown) == "1.00"
    assert str(m.max_drawdown_pct) == "0.0100"
    assert str(m.exposure_pct) == "100.0000"
    # mean equity (9999 + 10099 + 10199) / 3 = 10099; 1000 / 10099 = 0.0990197...
    assert str(m.turnover) == "0.0990"
    assert str(m.win_rate) == "0.0000"
    assert m.profit_factor is None
    assert m.sharpe_ratio is not None and m.sharpe_ratio > 0


# --- 4. a mixed case, every figure by hand ---------------------------------------------

# initial 100000, equity 80000 -> 120000 -> 145200 -> 121000, first bar 2021-01-01 00:00,
# last bar 2023-01-01 12:00 = 730.5 days = exactly 2 years of 365.25 days.
MIXED_EQUITY = [80000.0, 120000.0, 145200.0, 121000.0]
MIXED_TS = [
    np.datetime64("2021-01-01T00:00", "ns"),
    np.datetime64("2021-06-01T00:00", "ns"),
    np.datetime64("2022-06-01T00:00", "ns"),
    np.datetime64("2023-01-01T12:00", "ns"),
]
# Returns: r0 = 80000/100000 - 1 = -1/5, r1 = 120000/80000 - 1 = 1/2,
#          r2 = 145200/120000 - 1 = 21/100, r3 = 121000/145200 - 1 = -1/6.
# mean = (-1/5 + 1/2 + 21/100 - 1/6) / 4 = (103/300) / 4 = 103/1200
# squared deviations sum = sum(r^2) - 4 mean^2
#   = (1/25 + 1/4 + 441/10000 + 1/36) - 4 * 10609/1440000 = 39889/120000
# var (ddof=1) = 39889/360000, std = sqrt(39889)/600
# mean/std = (103/1200) * 600 / sqrt(39889) = 103 / (2 sqrt(39889)) = 0.25785...
# Sharpe(1Day) = 103 sqrt(252) / (2 sqrt(39889)) = 4.093369271...  -> 4.0934
# downside: min(r, 0)^2 = 1/25, 0, 0, 1/36; mean = (61/900) / 4 = 61/3600; DD = sqrt(61)/60
# mean/DD = (103/1200) * 60 / sqrt(61) = 103 / (20 sqrt(61))
# Sortino(1Day) = 103 sqrt(252) / (20 sqrt(61)) = 10.467490657...  -> 10.4675
# Peaks (starting at 100000): 100000, 120000, 145200, 145200
# falls: 20000 (20 %), 0, 0, 24200 (24200/145200 = 16.6667 %): the money maximum is the last
# bar, the percent maximum the first.
# CAGR: (121000/100000)^(1/2) - 1 = 1.1 - 1 = 10 %
# mean equity = 466200 / 4 = 116550; traded notional 233100 -> turnover 2
MIXED_TRADES = ["300", "-100", "0", "200", "-50"]


def _decimal_sqrt(n: int) -> Decimal:
    return Decimal(n).sqrt()


def test_mixed_case_golden() -> None:
    m = metrics(
        curve(MIXED_EQUITY, exposure=[0.0, 50000.0, 60000.0, 0.0], ts=MIXED_TS),
        [trade(p) for p in MIXED_TRADES],
        traded_notional=233100.0,
    )

    assert m.final_equity == Decimal("121000.00")
    assert str(m.total_return) == "21000.00"
    assert str(m.total_return_pct) == "21.0000"
    assert m.sharpe_ratio == Decimal("4.0934")
    assert m.sortino_ratio == Decimal("10.4675")
    # the closed forms above, evaluated in Decimal, agree with the literals
    q = Decimal("0.0001")
    assert (103 * _decimal_sqrt(252) / (2 * _decimal_sqrt(39889))).quantize(q) == Decimal("4.0934")
    assert (103 * _decimal_sqrt(252) / (20 * _decimal_sqrt(61))).quantize(q) == Decimal("10.4675")
    assert str(m.max_drawdown) == "24200.00"
    assert str(m.max_drawdown_pct) == "20.0000"
    assert str(m.cagr_pct) == "10.0000"
    assert str(m.exposure_pct) == "50.0000"
    assert str(m.turnover) == "2.0000"
    # trades: +300, -100, 0, +200, -50 -> 2 winners, 2 losers, the flat one counts in total
    assert (m.total_trades, m.winning_trades, m.losing_trades) == (5, 2, 2)
    assert str(m.win_rate) == "40.0000"  # 2 / 5
    assert str(m.avg_win) == "250.00"  # (300 + 200) / 2
    assert str(m.avg_loss) == "-75.00"  # (-100 - 50) / 2
    assert str(m.profit_factor) == "3.3333"  # 500 / 150
    assert m.periods_per_year == Decimal("252")


# --- 5. intraday annualization ---------------------------------------------------------


def test_intraday_annualization_scales_by_sqrt_390() -> None:
    day = metrics(curve(MIXED_EQUITY, ts=MIXED_TS), timeframe="1Day")
    minute = metrics(curve(MIXED_EQUITY, ts=MIXED_TS), timeframe="1Min")

    # Sharpe(1Min) = 103 sqrt(98280) / (2 sqrt(39889)) = 80.837565995...
    # Sortino(1Min) = 103 sqrt(98280) / (20 sqrt(61)) = 206.716377328...
    assert minute.sharpe_ratio == Decimal("80.8376")
    assert minute.sortino_ratio == Decimal("206.7164")
    assert minute.periods_per_year == Decimal("98280")
    assert day.sharpe_ratio is not None and minute.sharpe_ratio is not None
    # the same relation through the rounded daily figure: at most 0.00005 * sqrt(390) + 0.00005
    scaled = day.sharpe_ratio * Decimal(390).sqrt()
    assert abs(minute.sharpe_ratio - scaled) <= Decimal("0.0011")
    # nothing else depends on the bar length
    assert minute.max_drawdown == day.max_drawdown
    assert minute.cagr_pct == day.cagr_pct


# --- 6. periods per year ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeframe", "expected"),
    [
        ("1Min", 98280.0),  # 252 * 390
        ("5Min", 19656.0),  # 252 * 78
        ("15Min", 6552.0),  # 252 * 26
        ("1Hour", 1638.0),  # 252 * 6.5
        ("1Day", 252.0),
        (Timeframe.HOUR_1, 1638.0),
    ],
)
def test_periods_per_year(timeframe: str, expected: float) -> None:
    assert periods_per_year(timeframe) == expected


def test_unknown_timeframe_is_named_in_the_error() -> None:
    with pytest.raises(ValidationError, match="1Week"):
        periods_per_year("1Week")


# --- edges -----------------------------------------------------------------------------


def test_empty_curve() -> None:
    m = metrics(curve([]))
    assert m.final_equity == Decimal("100000.00")
    assert str(m.total_return) == "0.00"
    assert m.sharpe_ratio is None and m.sortino_ratio is None and m.cagr_pct is None
    assert str(m.max_drawdown) == "0.00" and str(m.max_drawdown_pct) == "0.0000"
    assert str(m.exposure_pct) == "0.0000" and str(m.turnover) == "0.0000"


def test_single_bar_has_no_sharpe_and_counts_the_first_bar_cost() -> None:
    m = metrics(curve([99999.0]))
    assert m.sharpe_ratio is None and m.sortino_ratio is None
    assert str(m.max_drawdown) == "1.00"
    assert m.cagr_pct is None  # span of 0 days


def test_no_losing_bar_has_no_sortino() -> None:
    # returns 1/100, 0, 1/101: std > 0, downside deviation 0
    m = metrics(curve([101000.0, 101000.0, 102000.0]))
    assert m.sharpe_ratio is not None and m.sharpe_ratio > 0
    assert m.sortino_ratio is None


def test_cagr_needs_a_day_and_positive_equity() -> None:
    minutes = [START + np.timedelta64(i, "m") for i in range(3)]
    assert metrics(curve([100000.0, 100100.0, 100200.0], ts=minutes)).cagr_pct is None
    broke = metrics(curve([50000.0, 0.0, -10.0]))
    assert broke.cagr_pct is None
    assert broke.sharpe_ratio is None  # a return through zero equity is not finite
    assert str(broke.max_drawdown) == "100010.00"
    assert str(broke.max_drawdown_pct) == "100.0100"


def test_money_and_ratios_round_half_even() -> None:
    # 100000.125 -> 100000.12 and 100000.135 -> 100000.14 (half to even)
    assert metrics(curve([100000.125])).final_equity == Decimal("100000.12")
    assert metrics(curve([100000.135])).final_equity == Decimal("100000.14")
    # profit factor 200.01 / 200.00 = 1.00005 exactly -> 1.0000 (half-up would give 1.0001)
    m = metrics(curve([100000.0, 100000.01]), [trade("200.01"), trade("-200.00")])
    assert str(m.profit_factor) == "1.0000"


def test_non_finite_equity_and_bad_capital_are_rejected() -> None:
    with pytest.raises(ValidationError, match="not finite"):
        metrics(curve([100000.0, float("nan")]))
    with pytest.raises(ValidationError, match="initial_capital"):
        metrics(curve([100.0]), initial="0")


def test_as_dict_is_plain() -> None:
    data = metrics(curve(MIXED_EQUITY, ts=MIXED_TS)).as_dict()
    assert data["sharpe_ratio"] == "4.0934"
    assert data["periods_per_year"] == "252"
    assert data["total_trades"] == 0

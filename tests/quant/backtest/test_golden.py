"""Golden numbers: the shipped sma_crossover config on a small bundled data set, both engine paths.

The data (tests/backtests/data/golden_spy_daily.csv) is 500 synthetic business days from
2021-01-04, made once with ``random_walk_bars(500, seed=2024, start="2021-01-04")`` and
committed, so the numbers never depend on the generator. The first two trades are recomputed
by hand from the CSV rows (crossings found with pandas, not with the engine's indicators);
the rest is pinned.
"""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from quant.backtest import BacktestConfig, BacktestEngine, BacktestResult, MarketData
from quant.strategies.config import config_load

ROOT = Path(__file__).resolve().parents[3]
CSV = ROOT / "tests" / "backtests" / "data" / "golden_spy_daily.csv"
CONFIG = ROOT / "configs" / "strategies" / "sma_crossover.yaml"
D = Decimal
COMMISSION, SLIP = 1.00, 10 / 10_000  # BacktestConfig's defaults: $1 a fill, 10 bps


def bars() -> pd.DataFrame:
    frame = pd.read_csv(CSV, index_col="timestamp", parse_dates=True)
    frame.index = pd.DatetimeIndex(frame.index).tz_localize("UTC")
    return frame


def crosses() -> tuple[list[str], list[str]]:
    """Dates where SMA(10) crosses above / below SMA(30), straight from pandas."""
    close = bars()["close"]
    fast, slow = close.rolling(10).mean(), close.rolling(30).mean()
    up = (fast.shift() < slow.shift()) & (fast > slow)
    down = (fast.shift() > slow.shift()) & (fast < slow)
    return (
        [d.date().isoformat() for d in close.index[up]],
        [d.date().isoformat() for d in close.index[down]],
    )


@pytest.fixture(scope="module", params=["event", "vectorized"])
def result(request: pytest.FixtureRequest) -> BacktestResult:
    config = config_load(CONFIG)
    assert (config.class_name, config.params, config.allow_short) == (
        "sma_crossover",
        {"fast": 10, "slow": 30},
        False,
    )
    assert (config.sizing.mode, config.sizing.percent) == ("percent", 100.0)
    data = MarketData.from_frames({"SPY": bars()})
    return BacktestEngine().run(
        config.build(), data, BacktestConfig(), mode=request.param, strategy_config=config.as_dict()
    )


def test_the_bundled_data_is_what_the_golden_numbers_were_made_from() -> None:
    frame = bars()

    assert len(frame) == 500
    assert (frame.index[0].date().isoformat(), frame.index[-1].date().isoformat()) == (
        "2021-01-04",
        "2022-12-02",
    )
    assert float(frame["close"].sum()) == pytest.approx(49_257.82, abs=0.005)


def test_first_two_trades_by_hand(result: BacktestResult) -> None:
    close = bars()["close"]
    ups, downs = crosses()
    # long only: enter on a cross up, exit on the next cross down (the short signal goes flat)
    entry_day, exit_day = ups[0], next(d for d in downs if d > ups[0])  # 2021-03-22, 2021-04-12
    fill_in = float(close[entry_day]) * (1 + SLIP)  # 106.42 * 1.001 = 106.52642
    fill_out = float(close[exit_day]) * (1 - SLIP)  # 102.09 * 0.999 = 101.98791
    # all-in: floor((100000 - 1) / 106.52642) = floor(938.73) = 938 shares
    qty = math.floor((100_000 - COMMISSION) / fill_in)
    pnl = (fill_out - fill_in) * qty - 2 * COMMISSION  # -4.53851 * 938 - 2 = -4259.12
    cash = 100_000 + pnl  # all in cash again: 95740.88
    second_day, second_exit = ups[1], next(d for d in downs if d > ups[1])
    second_in = float(close[second_day]) * (1 + SLIP)  # 105.42 * 1.001 = 105.52542
    second_qty = math.floor((cash - COMMISSION) / second_in)  # floor(95739.88 / 105.52542) = 907
    first, second = result.trades[0], result.trades[1]

    assert (entry_day, exit_day) == ("2021-03-22", "2021-04-12")
    assert (first.entry_time.date().isoformat(), first.exit_time.date().isoformat()) == (
        entry_day,
        exit_day,
    )
    assert first.side == "long"
    assert first.entry_price == D("106.52642") == D(repr(round(fill_in, 6)))
    assert first.exit_price == D("101.98791") == D(repr(round(fill_out, 6)))
    assert first.quantity == D(qty) == D(938)
    assert first.commission == D("2.00")
    assert first.pnl == D("-4259.12") == D(repr(round(pnl, 2)))
    days = [d.date().isoformat() for d in close.index]
    assert first.bars_held == days.index(exit_day) - days.index(entry_day) == 15

    assert (second_day, second_exit) == ("2021-04-16", "2021-06-02")
    assert (second.entry_time.date().isoformat(), second.exit_time.date().isoformat()) == (
        second_day,
        second_exit,
    )
    assert second.entry_price == D("105.52542") == D(repr(round(second_in, 6)))
    assert second.quantity == D(second_qty) == D(907)
    assert (second.exit_price, second.pnl, second.bars_held) == (D("104.81508"), D("-646.28"), 33)


def test_pinned_trades_open_position_and_final_equity(result: BacktestResult) -> None:
    assert len(result.trades) == 7
    assert len(result.fills) == 15  # 7 round trips and the open entry
    realized = sum((t.pnl for t in result.trades), D(0))
    assert realized == D("15449.68")
    (position,) = result.open_positions
    assert (position.side, position.entry_time.date().isoformat()) == ("long", "2022-11-28")
    assert (position.quantity, position.entry_price, position.last_price) == (
        D("1134"),
        D("101.79169"),
        D("105.68"),  # the last close
    )
    assert position.market_value == D("119841.12") == D(1134) * D("105.68")
    assert position.unrealized_pnl == D("4408.34")
    # final equity = capital + realized + unrealized (entry commission included in both)
    assert result.final_equity == D("119858.02") == D(100_000) + realized + position.unrealized_pnl


def test_pinned_metrics(result: BacktestResult) -> None:
    assert result.metrics.as_dict() == {
        "total_return": "19858.02",
        "total_return_pct": "19.8580",
        "sharpe_ratio": "0.6416",
        "max_drawdown": "13247.35",
        "max_drawdown_pct": "11.0172",
        "win_rate": "28.5714",
        "total_trades": 7,
        "winning_trades": 2,
        "losing_trades": 5,
        "avg_win": "12981.80",
        "avg_loss": "-2102.78",
        "profit_factor": "2.4695",
        "sortino_ratio": "0.9838",
        "cagr_pct": "9.9573",
        "exposure_pct": "50.4000",
        "turnover": "15.2286",
        "final_equity": "119858.02",
        "periods_per_year": "252",
    }

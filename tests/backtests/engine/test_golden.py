"""Golden numbers: the shipped sma_crossover config on a small bundled data set.

The data (tests/backtests/data/golden_spy_daily.csv) is 500 synthetic daily bars committed to
the repository; the first trade is recomputed by hand from its rows, the rest is pinned.
"""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from backtests.engine import BacktestConfig, BacktestEngine, BacktestResult, MarketData
from quant.strategies.config import config_load

ROOT = Path(__file__).resolve().parents[3]
CSV = ROOT / "tests" / "backtests" / "data" / "golden_spy_daily.csv"
CONFIG = ROOT / "configs" / "strategies" / "sma_crossover.yaml"
D = Decimal


def bars() -> pd.DataFrame:
    frame = pd.read_csv(CSV, index_col="timestamp", parse_dates=True)
    frame.index = pd.DatetimeIndex(frame.index).tz_localize("UTC")
    return frame


@pytest.fixture(scope="module", params=["event", "vectorized"])
def result(request: pytest.FixtureRequest) -> BacktestResult:
    config = config_load(CONFIG)
    assert (config.params, config.allow_short) == ({"fast": 10, "slow": 30}, False)
    data = MarketData.from_frames({"SPY": bars()})
    return BacktestEngine().run(
        config.build(), data, BacktestConfig(), mode=request.param, strategy_config=config.as_dict()
    )


def test_first_trade_by_hand(result: BacktestResult) -> None:
    frame = bars()
    close = frame["close"]
    entry_close = float(close["2021-03-22"])  # 106.42
    exit_close = float(close["2021-04-12"])  # 102.09
    fill_in = entry_close * (1 + 10 / 10_000)  # 106.52642
    fill_out = exit_close * (1 - 10 / 10_000)  # 101.98791
    quantity = math.floor((100_000 - 1) / fill_in)  # floor(938.72) = 938
    pnl = (fill_out - fill_in) * quantity - 2 * 1.00  # -4257.12 - 2 = -4259.12
    trade = result.trades[0]

    assert (trade.entry_time.date().isoformat(), trade.exit_time.date().isoformat()) == (
        "2021-03-22",
        "2021-04-12",
    )
    assert trade.entry_price == D("106.52642") == D(repr(round(fill_in, 6)))
    assert trade.exit_price == D("101.98791") == D(repr(round(fill_out, 6)))
    assert trade.quantity == D(quantity) == D(938)
    assert trade.commission == D("2.00")
    assert trade.pnl == D("-4259.12") == D(repr(round(pnl, 2)))


def test_pinned_trades_and_open_position(result: BacktestResult) -> None:
    second = result.trades[1]
    assert len(result.trades) == 7
    assert (second.quantity, second.entry_price, second.exit_price, second.pnl) == (
        D("907"),
        D("105.52542"),
        D("104.81508"),
        D("-646.28"),
    )
    assert sum((t.pnl for t in result.trades), D(0)) == D("15449.68")
    (position,) = result.open_positions
    assert (position.quantity, position.entry_price, position.last_price) == (
        D("1134"),
        D("101.79169"),
        D("105.68"),
    )
    assert position.market_value == D("119841.12")  # 1134 x 105.68, the last close
    # final equity = cash + open position at the last close
    assert result.final_equity == D("119858.02")


def test_pinned_metrics(result: BacktestResult) -> None:
    m = result.metrics
    assert m.as_dict() == {
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

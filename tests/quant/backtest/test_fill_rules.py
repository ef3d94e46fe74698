"""The fill model's rules (``backtests/engine/simulator.py``) checked with numbers worked by hand.

No database. Unless a test says otherwise a run starts with $10,000, pays $1 per fill and
10 bps of slippage, fills market orders on the signal bar's close and sizes entries all-in
(percent 100). Scenarios with market orders only run on both engine paths and must agree
exactly; limit and stop orders exist on the event-driven path only (the vectorized path
passes plain market ``Signal`` objects).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from quant.backtest import BacktestConfig, BacktestEngine, BacktestResult, FillAt, MarketData
from quant.backtest.results import OpenPosition
from quant.strategies.base import (
    FloatArray,
    OrderType,
    PortfolioState,
    PriceBar,
    Signal,
    Strategy,
    Target,
)
from quant.strategies.config import config_validate
from quant.strategies.registry import register

START = pd.Timestamp("2024-01-01", tz="UTC")
LONG, FLAT, SHORT = Target.LONG, Target.FLAT, Target.SHORT
D = Decimal

# (open, high, low, close, volume), or just a close for a flat bar with plenty of volume
Bar = tuple[float, float, float, float, float] | float


def day(i: int) -> datetime:
    return (START + pd.Timedelta(days=i)).to_pydatetime()


def bars(rows: Sequence[Bar], *, days: Sequence[int] | None = None) -> pd.DataFrame:
    """Daily bars from 2024-01-01 (or on the given day numbers, to leave gaps)."""
    full = [row if isinstance(row, tuple) else (row, row, row, row, 1_000_000.0) for row in rows]
    index = pd.DatetimeIndex([day(i) for i in (days if days is not None else range(len(rows)))])
    return pd.DataFrame(full, index=index, columns=["open", "high", "low", "close", "volume"])


@dataclass(frozen=True)
class Step:
    """One scripted signal; a bare ``Target`` in a script means a market order."""

    target: Target
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    stop_price: float | None = None
    stop_distance: float | None = None


Script = Mapping[str, Mapping[int, Target | Step]]


@register
class Scripted(Strategy):
    """Emits the scripted targets at the given bar numbers, in both engine forms."""

    name = "test_fill_rules_scripted"
    supports_vectorized = True

    def __init__(self, script: Script) -> None:
        super().__init__()
        self.script = {
            symbol: {i: s if isinstance(s, Step) else Step(s) for i, s in steps.items()}
            for symbol, steps in script.items()
        }
        self.bar = -1

    def reset(self) -> None:
        self.bar = -1

    def on_market_data(self, bar: PriceBar) -> None:
        pass

    def generate_signals(self, state: PortfolioState) -> list[Signal]:
        self.bar += 1
        signals = []
        for symbol in self.symbols:
            step = self.script.get(symbol, {}).get(self.bar)
            if step is not None:
                signals.append(
                    Signal(
                        symbol=symbol,
                        target=step.target,
                        order_type=step.order_type,
                        limit_price=step.limit_price,
                        stop_price=step.stop_price,
                        stop_distance=step.stop_distance,
                    )
                )
        return signals

    def signals_frame(self, bars: Mapping[str, Mapping[str, FloatArray]]) -> dict[str, FloatArray]:
        out: dict[str, FloatArray] = {}
        for symbol in self.symbols:
            targets = np.full(len(bars[symbol]["close"]), np.nan)
            for i, step in self.script.get(symbol, {}).items():
                if step != Step(step.target):
                    raise AssertionError("only plain market targets have a vectorized form")
                targets[i] = float(step.target)
            out[symbol] = targets
        return out


def backtest(
    script: Script,
    frames: Mapping[str, pd.DataFrame],
    *,
    mode: str = "event",
    sizing: Mapping[str, Any] | None = None,
    allow_short: bool = False,
    **config: Any,
) -> BacktestResult:
    strategy = Scripted(script)
    strategy.initialize(
        config_validate(
            {
                "name": "scripted",
                "class": Scripted.name,
                "symbols": list(frames),
                "allow_short": allow_short,
                "sizing": dict(sizing or {"mode": "percent", "percent": 100}),
            }
        )
    )
    config.setdefault("initial_capital", D("10000"))
    return BacktestEngine().run(
        strategy, MarketData.from_frames(frames), BacktestConfig(**config), mode=mode
    )


def backtest_both(
    script: Script, frames: Mapping[str, pd.DataFrame], **kwargs: Any
) -> BacktestResult:
    """Run both paths, check they agree to the last bit, return the event-driven result."""
    event = backtest(script, frames, mode="event", **kwargs)
    vector = backtest(script, frames, mode="vectorized", **kwargs)
    assert vector.fills == event.fills
    assert vector.trades == event.trades
    # the valuation of open positions is pinned separately (see the xfail test below)
    assert [held(p) for p in vector.open_positions] == [held(p) for p in event.open_positions]
    for name in ("equity", "cash", "gross_exposure"):
        np.testing.assert_array_equal(
            getattr(vector.equity_curve, name), getattr(event.equity_curve, name), err_msg=name
        )
    assert vector.metrics == event.metrics
    for key in ("unfilled_orders", "rejections", "rejection_count"):
        assert vector.metadata[key] == event.metadata[key]
    return event


def held(position: OpenPosition) -> tuple[str, str, Decimal, datetime, Decimal]:
    return (
        position.symbol,
        position.side,
        position.quantity,
        position.entry_time,
        position.entry_price,
    )


def fills(result: BacktestResult) -> list[tuple[str, str, Decimal, Decimal, datetime]]:
    return [(f.side, f.intent, f.quantity, f.price, f.ts) for f in result.fills]


def equity(result: BacktestResult) -> list[float]:
    return [float(v) for v in result.equity_curve.equity]


# --- (1) market fills on the signal bar's close -------------------------------------------


def test_market_round_trip_fills_on_the_close_with_slippage_and_commission() -> None:
    result = backtest_both({"SPY": {1: LONG, 2: FLAT}}, {"SPY": bars([100, 100, 110, 110])})

    # buy at 100 * (1 + 10/10000) = 100.1; all-in floor((10000 - 1) / 100.1) = floor(99.89) = 99
    # cash 10000 - 99 * 100.1 - 1 = 10000 - 9909.9 - 1 = 89.1
    # sell at 110 * (1 - 10/10000) = 109.89; cash 89.1 + 99 * 109.89 - 1 = 89.1 + 10879.11 - 1
    assert fills(result) == [
        ("buy", "entry", D(99), D("100.1"), day(1)),
        ("sell", "exit", D(99), D("109.89"), day(2)),
    ]
    assert [f.commission for f in result.fills] == [D("1.00"), D("1.00")]
    (trade,) = result.trades
    assert (trade.side, trade.quantity, trade.entry_price, trade.exit_price) == (
        "long",
        D(99),
        D("100.1"),
        D("109.89"),
    )
    # pnl = (109.89 - 100.1) * 99 - 2 = 969.21 - 2
    assert (trade.commission, trade.pnl, trade.bars_held) == (D("2.00"), D("967.21"), 1)
    assert (trade.entry_time, trade.exit_time) == (day(1), day(2))
    # bar 1 holds 99 shares at the 100 close: 89.1 + 9900
    assert equity(result) == pytest.approx([10_000, 9_989.1, 10_967.21, 10_967.21])
    assert result.metrics.final_equity == D("10967.21")
    assert result.open_positions == []


# --- (2) next-open fills ----------------------------------------------------------------


def test_next_open_fills_at_the_next_bars_open_and_a_last_bar_order_never_fills() -> None:
    frame = bars(
        [
            (100, 100, 100, 100, 1e6),
            (101, 101, 99, 100, 1e6),  # LONG signalled
            (102, 103, 101, 102, 1e6),  # buy fills at this open
            (104, 106, 103, 105, 1e6),  # FLAT signalled
            (107, 108, 106, 106, 1e6),  # sell fills at this open
            (106, 107, 105, 106, 1e6),  # LONG signalled on the last bar: nothing left to fill it
        ]
    )
    result = backtest_both(
        {"SPY": {1: LONG, 3: FLAT, 5: LONG}}, {"SPY": frame}, fill_at=FillAt.NEXT_OPEN
    )

    # buy at 102 * 1.001 = 102.102; floor(9999 / 102.102) = floor(97.93) = 97
    # cash 10000 - 97 * 102.102 - 1 = 10000 - 9903.894 - 1 = 95.106
    # sell at 107 * 0.999 = 106.893; cash 95.106 + 97 * 106.893 - 1 = 95.106 + 10368.621 - 1
    assert fills(result) == [
        ("buy", "entry", D(97), D("102.102"), day(2)),
        ("sell", "exit", D(97), D("106.893"), day(4)),
    ]
    (trade,) = result.trades
    # pnl = (106.893 - 102.102) * 97 - 2 = 4.791 * 97 - 2 = 464.727 - 2 = 462.727
    assert (trade.pnl, trade.entry_time, trade.exit_time, trade.bars_held) == (
        D("462.73"),
        day(2),
        day(4),
        2,
    )
    # bar 2: 95.106 + 97 * 102 = 9989.106; bar 3: 95.106 + 97 * 105 = 10280.106
    assert equity(result) == pytest.approx(
        [10_000, 10_000, 9_989.106, 10_280.106, 10_462.727, 10_462.727]
    )
    assert result.metadata["unfilled_orders"] == 1


# --- (3) sizing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sizing", "expected_qty"),
    [
        # a fixed number of shares
        ({"mode": "fixed", "quantity": 10}, 10),
        # 50% of 10000 = 5000; floor((5000 - 1) / 100.1) = floor(49.94) = 49
        ({"mode": "percent", "percent": 50}, 49),
        # risk 2% of 10000 = 200 over the config stop 5% of 100.1 = 5.005: floor(39.96) = 39
        ({"mode": "risk", "risk_pct": 2, "stop_pct": 5}, 39),
        # risk 10% = 1000 over 1% of 100.1 = 1.001: 999 shares, but cash buys floor(9999/100.1)
        ({"mode": "risk", "risk_pct": 10, "stop_pct": 1}, 99),
    ],
    ids=["fixed", "percent", "risk-config-stop", "risk-capped-by-cash"],
)
def test_entry_quantity_follows_the_sizing(sizing: dict[str, Any], expected_qty: int) -> None:
    result = backtest_both({"SPY": {1: LONG}}, {"SPY": bars([100, 100, 100])}, sizing=sizing)

    assert fills(result) == [("buy", "entry", D(expected_qty), D("100.1"), day(1))]
    # cash = 10000 - qty * 100.1 - 1
    assert result.equity_curve.cash[-1] == pytest.approx(10_000 - expected_qty * 100.1 - 1)


@pytest.mark.parametrize(
    ("stop_distance", "expected_qty"),
    [
        (2.5, 40),  # risk 1% of 10000 = 100 over the signal's 2.5: 40 shares
        (0.5, 99),  # 100 / 0.5 = 200 shares, capped by cash at floor(9999 / 100.1) = 99
    ],
)
def test_risk_sizing_uses_the_signals_stop_distance(
    stop_distance: float, expected_qty: int
) -> None:
    # event path only: the vectorized form has no stop distances
    script = {"SPY": {1: Step(LONG, stop_distance=stop_distance)}}
    result = backtest(
        script,
        {"SPY": bars([100, 100, 100])},
        sizing={"mode": "risk", "risk_pct": 1, "stop_pct": 50},
    )

    assert fills(result) == [("buy", "entry", D(expected_qty), D("100.1"), day(1))]


# --- (4) shorts -------------------------------------------------------------------------


def test_short_round_trip_raises_cash_on_entry_and_profits_from_a_fall() -> None:
    result = backtest_both(
        {"SPY": {1: SHORT, 2: FLAT}}, {"SPY": bars([100, 100, 90, 90])}, allow_short=True
    )

    # sell at 100 * 0.999 = 99.9; 100% of equity: floor((10000 - 1) / 99.9) = floor(100.09) = 100
    # cash 10000 + 100 * 99.9 - 1 = 19989; equity 19989 - 100 * 100 = 9989
    # cover at 90 * 1.001 = 90.09; cash 19989 - 100 * 90.09 - 1 = 19989 - 9009 - 1 = 10979
    assert fills(result) == [
        ("sell", "entry", D(100), D("99.9"), day(1)),
        ("buy", "exit", D(100), D("90.09"), day(2)),
    ]
    assert result.equity_curve.cash[1] == pytest.approx(19_989)
    assert equity(result) == pytest.approx([10_000, 9_989, 10_979, 10_979])
    (trade,) = result.trades
    # pnl = (99.9 - 90.09) * 100 - 2 = 981 - 2
    assert (trade.side, trade.quantity, trade.pnl) == ("short", D(100), D("979.00"))


def test_long_to_short_flip_exits_then_enters_on_the_same_bar() -> None:
    result = backtest_both(
        {"SPY": {1: LONG, 2: SHORT, 3: FLAT}},
        {"SPY": bars([100, 100, 110, 100])},
        allow_short=True,
    )

    # bar 1: buy 99 at 100.1 (cash 89.1); bar 2: sell 99 at 109.89 (cash 10967.21), then
    # short all-in: floor((10967.21 - 1) / 109.89) = floor(99.79) = 99 at 109.89
    # (cash 10967.21 + 10879.11 - 1 = 21845.32); bar 3: cover 99 at 100.1
    # (cash 21845.32 - 9909.9 - 1 = 11934.42)
    assert fills(result) == [
        ("buy", "entry", D(99), D("100.1"), day(1)),
        ("sell", "exit", D(99), D("109.89"), day(2)),
        ("sell", "entry", D(99), D("109.89"), day(2)),
        ("buy", "exit", D(99), D("100.1"), day(3)),
    ]
    long, short = result.trades
    # long: (109.89 - 100.1) * 99 - 2; short: (109.89 - 100.1) * 99 - 2
    assert (long.side, long.pnl, short.side, short.pnl) == (
        "long",
        D("967.21"),
        "short",
        D("967.21"),
    )
    assert result.metrics.final_equity == D("11934.42")  # 10000 + 2 * 967.21


def test_without_shorts_a_short_target_only_exits() -> None:
    frames = {"SPY": bars([100, 100, 110, 110])}

    flipped = backtest_both({"SPY": {1: LONG, 2: SHORT}}, frames, allow_short=False)
    from_flat = backtest_both({"SPY": {1: SHORT}}, frames, allow_short=False)

    # the same numbers as the plain long round trip: nothing is sold short
    assert fills(flipped) == [
        ("buy", "entry", D(99), D("100.1"), day(1)),
        ("sell", "exit", D(99), D("109.89"), day(2)),
    ]
    assert flipped.open_positions == []
    assert flipped.metrics.final_equity == D("10967.21")
    assert from_flat.fills == []
    assert equity(from_flat) == [10_000.0] * 4


# --- (5) limit and stop orders (event path) ----------------------------------------------

SIGNAL_BAR_REACHES = (100.0, 106.0, 94.0, 100.0, 1e6)  # touches 95 and 105 on the signal bar


@pytest.mark.parametrize(
    ("next_bar", "expected_price", "expected_qty"),
    [
        # opens at 94, below the limit: fills at the open; floor(9999 / 94) = 106
        ((94, 96, 93, 95, 1e6), "94", 106),
        # opens above, the low touches 95: fills at the limit; floor(9999 / 95) = 105
        ((98, 99, 95, 97, 1e6), "95", 105),
    ],
    ids=["open-below-limit", "low-reaches-limit"],
)
def test_limit_buy_fills_from_the_next_bar_without_slippage(
    next_bar: Bar, expected_price: str, expected_qty: int
) -> None:
    frame = bars([100, SIGNAL_BAR_REACHES, next_bar, 100])
    script = {"SPY": {1: Step(LONG, OrderType.LIMIT, limit_price=95)}}

    result = backtest(script, {"SPY": frame})

    # the signal bar's low of 94 does not count: the order works from bar 2
    assert fills(result) == [("buy", "entry", D(expected_qty), D(expected_price), day(2))]
    assert result.metadata["unfilled_orders"] == 0


def test_limit_buy_never_fills_while_the_low_stays_above() -> None:
    frame = bars([100, SIGNAL_BAR_REACHES, (98, 99, 95.5, 97, 1e6), (97, 98, 96, 97, 1e6)])
    script = {"SPY": {1: Step(LONG, OrderType.LIMIT, limit_price=95)}}

    result = backtest(script, {"SPY": frame})

    assert result.fills == []
    assert result.metadata["unfilled_orders"] == 1
    assert equity(result) == [10_000.0] * 4


@pytest.mark.parametrize(
    ("exit_bar", "expected_price", "expected_pnl"),
    [
        # opens at 106, above the limit: 89.1 + 99 * 106 - 1; pnl (106 - 100.1) * 99 - 2
        ((106, 107, 105, 106, 1e6), "106", "582.10"),
        # the high touches 105: pnl (105 - 100.1) * 99 - 2 = 485.1 - 2
        ((103, 105, 102, 104, 1e6), "105", "483.10"),
    ],
    ids=["open-above-limit", "high-reaches-limit"],
)
def test_limit_sell_mirrors_the_limit_buy(
    exit_bar: Bar, expected_price: str, expected_pnl: str
) -> None:
    frame = bars([100, 100, (100, 106, 100, 100, 1e6), exit_bar])
    script: Script = {"SPY": {1: LONG, 2: Step(FLAT, OrderType.LIMIT, limit_price=105)}}

    result = backtest(script, {"SPY": frame})

    assert fills(result)[1:] == [("sell", "exit", D(99), D(expected_price), day(3))]
    (trade,) = result.trades
    assert trade.pnl == D(expected_pnl)
    assert result.metrics.final_equity == D(10_000) + D(expected_pnl)


def test_limit_sell_never_fills_while_the_high_stays_below() -> None:
    frame = bars([100, 100, 100, (103, 104.9, 102, 104, 1e6)])
    script: Script = {"SPY": {1: LONG, 2: Step(FLAT, OrderType.LIMIT, limit_price=105)}}

    result = backtest(script, {"SPY": frame})

    assert len(result.fills) == 1  # only the market entry
    assert result.trades == []
    assert [p.quantity for p in result.open_positions] == [D(99)]
    assert result.metadata["unfilled_orders"] == 1


@pytest.mark.parametrize(
    ("next_bar", "expected_price", "expected_qty"),
    [
        # gaps above the stop: 107 * 1.001 = 107.107; floor(9999 / 107.107) = floor(93.35) = 93
        ((107, 108, 106, 107, 1e6), "107.107", 93),
        # the high reaches 105: 105 * 1.001 = 105.105; floor(9999 / 105.105) = floor(95.13) = 95
        ((103, 106, 102, 104, 1e6), "105.105", 95),
    ],
    ids=["gap-above-stop", "high-reaches-stop"],
)
def test_stop_buy_fills_at_the_open_or_the_stop_plus_slippage(
    next_bar: Bar, expected_price: str, expected_qty: int
) -> None:
    frame = bars([100, SIGNAL_BAR_REACHES, next_bar, 100])
    script = {"SPY": {1: Step(LONG, OrderType.STOP, stop_price=105)}}

    result = backtest(script, {"SPY": frame})

    assert fills(result) == [("buy", "entry", D(expected_qty), D(expected_price), day(2))]


def test_stop_buy_waits_while_the_high_stays_below_the_stop() -> None:
    frame = bars([100, 100, (103, 104.5, 102, 104, 1e6)])
    script = {"SPY": {1: Step(LONG, OrderType.STOP, stop_price=105)}}

    result = backtest(script, {"SPY": frame})

    assert result.fills == []
    assert result.metadata["unfilled_orders"] == 1


def test_stop_sell_exits_at_the_gap_open_minus_slippage() -> None:
    frame = bars([100, 100, 100, (93, 94, 92, 93, 1e6)])
    script: Script = {"SPY": {1: LONG, 2: Step(FLAT, OrderType.STOP, stop_price=95)}}

    result = backtest(script, {"SPY": frame})

    # opens at 93, below the stop: 93 * 0.999 = 92.907
    assert fills(result)[1:] == [("sell", "exit", D(99), D("92.907"), day(3))]
    # pnl = (92.907 - 100.1) * 99 - 2 = -712.107 - 2 = -714.107
    assert result.trades[0].pnl == D("-714.11")


def test_a_target_change_cancels_the_resting_order() -> None:
    frame = bars([100, 100, (98, 99, 96, 97, 1e6), (94, 95, 90, 92, 1e6)])
    resting = {1: Step(LONG, OrderType.LIMIT, limit_price=95)}

    kept = backtest({"SPY": resting}, {"SPY": frame})
    cancelled = backtest({"SPY": {**resting, 2: FLAT}}, {"SPY": frame})

    # left alone, the limit fills at bar 3's open of 94; the FLAT on bar 2 cancels it
    assert fills(kept) == [("buy", "entry", D(106), D(94), day(3))]
    assert cancelled.fills == []
    assert cancelled.metadata["unfilled_orders"] == 0


# --- (6) partial fills and (7) volume impact -----------------------------------------------


def test_partial_fills_take_a_share_of_each_bars_volume() -> None:
    frame = bars(
        [
            (100, 100, 100, 100, 1000),
            (100, 100, 100, 100, 200),  # LONG 50: 10% of 200 = 20 fill now
            (102, 102, 102, 102, 200),  # 20 more at 102 * 1.001 = 102.102
            (104, 104, 104, 104, 100),  # the last 10 at 104 * 1.001 = 104.104
            (110, 110, 110, 110, 1000),  # FLAT: 50 <= 10% of 1000, all sold at 109.89
        ]
    )
    result = backtest_both(
        {"SPY": {1: LONG, 4: FLAT}},
        {"SPY": frame},
        sizing={"mode": "fixed", "quantity": 50},
        max_volume_participation=D("0.1"),
    )

    assert fills(result) == [
        ("buy", "entry", D(20), D("100.1"), day(1)),
        ("buy", "entry", D(20), D("102.102"), day(2)),
        ("buy", "entry", D(10), D("104.104"), day(3)),
        ("sell", "exit", D(50), D("109.89"), day(4)),
    ]
    assert len({f.order_id for f in result.fills[:3]}) == 1  # one order, three fills
    (trade,) = result.trades
    # entry cost 20 * 100.1 + 20 * 102.102 + 10 * 104.104 = 2002 + 2042.04 + 1041.04 = 5085.08
    # average 5085.08 / 50 = 101.7016; pnl 50 * 109.89 - 5085.08 - 4 = 5494.5 - 5089.08
    assert (trade.quantity, trade.entry_price, trade.exit_price) == (
        D(50),
        D("101.7016"),
        D("109.89"),
    )
    assert (trade.commission, trade.pnl, trade.bars_held) == (D("4.00"), D("405.42"), 3)
    # cash at each bar: 10000 - 2002 - 1 = 7997; - 2042.04 - 1 = 5953.96; - 1041.04 - 1 = 4911.92
    assert list(result.equity_curve.cash) == pytest.approx(
        [10_000, 7_997, 5_953.96, 4_911.92, 10_405.42]
    )


def test_volume_impact_adds_slippage_in_proportion_to_the_volume_taken() -> None:
    frame = bars(
        [(100, 100, 100, 100, 1000), (100, 100, 100, 100, 1000), (110, 110, 110, 110, 1000)]
    )
    result = backtest_both(
        {"SPY": {1: LONG, 2: FLAT}},
        {"SPY": frame},
        sizing={"mode": "fixed", "quantity": 50},
        volume_impact_bps=D("100"),
    )

    # buy: 100 * 1.001 * (1 + 0.01 * 50 / 1000) = 100.1 * 1.0005 = 100.15005
    # sell: 110 * 0.999 * (1 - 0.0005) = 109.89 * 0.9995 = 109.835055
    assert fills(result) == [
        ("buy", "entry", D(50), D("100.15005"), day(1)),
        ("sell", "exit", D(50), D("109.835055"), day(2)),
    ]
    # pnl = (109.835055 - 100.15005) * 50 - 2 = 484.25025 - 2 = 482.25025
    assert result.trades[0].pnl == D("482.25")
    # cash 10000 - 5007.5025 - 1 + 5491.75275 - 1
    assert result.equity_curve.cash[-1] == pytest.approx(10_482.25025)


def test_volume_impact_is_priced_on_the_quantity_cash_can_pay_for() -> None:
    frame = bars([(100, 100, 100, 100, 1000)] * 3)
    result = backtest_both({"SPY": {1: LONG}}, {"SPY": frame}, volume_impact_bps=D("1000"))

    # all-in at 100.1: floor(9999 / 100.1) = 99, whose price with 10% impact is
    # 100.1 * (1 + 0.1 * 99 / 1000) = 101.09099: floor(9999 / 101.09099) = floor(98.91) = 98;
    # 98 shares are priced 100.1 * (1 + 0.1 * 98 / 1000) = 100.1 * 1.0098 = 101.08098
    assert fills(result) == [("buy", "entry", D(98), D("101.08098"), day(1))]
    # cash 10000 - 98 * 101.08098 - 1 = 10000 - 9905.93604 - 1
    assert result.equity_curve.cash[-1] == pytest.approx(93.06396)


# --- (8) the position left open at the end -------------------------------------------------


def test_an_open_position_at_the_end_is_valued_at_the_last_close() -> None:
    result = backtest_both({"SPY": {1: LONG}}, {"SPY": bars([100, 100, 105, 108])})

    assert result.trades == []
    (position,) = result.open_positions
    assert (position.side, position.quantity, position.entry_price, position.last_price) == (
        "long",
        D(99),
        D("100.1"),
        D(108),
    )
    # 99 * 108 = 10692; unrealized (108 - 100.1) * 99 - 1 = 782.1 - 1
    assert (position.market_value, position.unrealized_pnl) == (D("10692.00"), D("781.10"))
    assert position.entry_time == day(1)
    # cash 89.1 + 10692
    assert equity(result)[-1] == pytest.approx(10_781.1)
    assert result.metrics.final_equity == D("10781.10")


def test_vectorized_path_values_open_positions_like_the_event_path() -> None:
    script = {"SPY": {1: LONG}}
    frames = {"SPY": bars([100, 100, 105, 108])}

    event = backtest(script, frames, mode="event")
    vector = backtest(script, frames, mode="vectorized")

    # event: last_price 108, market value 99 * 108 = 10692 (the vectorized run says 100, 9900)
    assert vector.open_positions == event.open_positions


# --- (9) several symbols on one cash account ----------------------------------------------


def test_two_symbols_share_one_cash_account_and_a_missing_bar_keeps_the_last_close() -> None:
    frames = {
        "AAA": bars([100, 100, 110, 110]),
        "BBB": bars([50, 50, 52], days=[0, 1, 3]),  # no bar on day 2
    }
    result = backtest_both(
        {"AAA": {1: LONG}, "BBB": {1: LONG}}, frames, sizing={"mode": "percent", "percent": 50}
    )

    # AAA first: 50% of 10000 = 5000; floor(4999 / 100.1) = 49; cash 10000 - 4904.9 - 1 = 5094.1
    # BBB: equity 5094.1 + 49 * 100 = 9994.1, 50% = 4997.05 (cash covers it);
    # floor(4996.05 / 50.05) = floor(99.82) = 99; cash 5094.1 - 4954.95 - 1 = 138.15
    assert [(f.symbol, f.quantity, f.price) for f in result.fills] == [
        ("AAA", D(49), D("100.1")),
        ("BBB", D(99), D("50.05")),
    ]
    assert np.isnan(result.closes["BBB"][2])
    # bar 1: 138.15 + 49 * 100 + 99 * 50 = 9988.15
    # bar 2: 138.15 + 49 * 110 + 99 * 50 (BBB carried at 50) = 10478.15
    # bar 3: 138.15 + 5390 + 99 * 52 = 10676.15
    assert equity(result) == pytest.approx([10_000, 9_988.15, 10_478.15, 10_676.15])
    assert list(result.equity_curve.cash) == pytest.approx([10_000, 138.15, 138.15, 138.15])
    assert {p.symbol: p.last_price for p in result.open_positions} == {"AAA": 110, "BBB": 52}

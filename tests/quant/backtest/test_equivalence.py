"""The event-driven loop and the vectorized path give identical results for every built-in strategy.

Hypothesis draws the data (one symbol, or two on different calendars so alignment leaves NaN
gaps, some before the second symbol's first bar), the strategy's parameters, shorting, sizing,
fill timing and volume caps small enough to split orders into partial fills. Identical means
the same fills, trades, open positions, rejections, metrics and, to the bit, the same equity,
cash and exposure arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quant.backtest import BacktestConfig, BacktestEngine, BacktestResult, FillAt, MarketData
from quant.backtest.sample import random_walk_bars
from quant.strategies.config import config_validate

BUILTINS = ("bollinger_reversion", "momentum", "rsi_reversion", "sma_crossover")
PARTIAL = Decimal("0.001")  # 50..2,000 shares a bar with random_walk_bars volumes: partial fills


def _sma_params() -> st.SearchStrategy[dict[str, Any]]:
    return st.integers(1, 25).flatmap(
        lambda fast: st.fixed_dictionaries(
            {"fast": st.just(fast), "slow": st.integers(fast + 1, 60)}
        )
    )


def _rsi_params() -> st.SearchStrategy[dict[str, Any]]:
    levels = st.lists(st.integers(5, 95), min_size=3, max_size=3, unique=True).map(sorted)
    return st.builds(
        lambda period, lv: {
            "period": period,
            "oversold": lv[0],
            "exit_level": lv[1],
            "overbought": lv[2],
        },
        st.integers(2, 30),
        levels,
    )


PARAMS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "sma_crossover": _sma_params(),
    "momentum": st.fixed_dictionaries(
        {
            "lookback": st.integers(1, 40),
            "entry_threshold_pct": st.floats(0.0, 6.0),
            "exit_threshold_pct": st.floats(-3.0, 3.0),
        }
    ),
    "rsi_reversion": _rsi_params(),
    "bollinger_reversion": st.fixed_dictionaries(
        {"window": st.integers(2, 40), "num_std": st.floats(0.25, 3.0)}
    ),
}
SIZINGS: list[dict[str, Any]] = [
    {"mode": "percent", "percent": 100},
    {"mode": "percent", "percent": 50},
    {"mode": "fixed", "quantity": 40},
    {"mode": "risk", "risk_pct": 1.0, "stop_pct": 2.0},
]


def frames(n: int, seed: int, *, two: bool, late_start: int = 0) -> dict[str, pd.DataFrame]:
    """One symbol, or two where the second misses about one bar in seven and, with
    ``late_start``, has no bars at all before that position of the timeline."""
    first = random_walk_bars(n, seed=seed, volatility=0.02)
    if not two:
        return {"AAA": first}
    second = random_walk_bars(n, seed=seed + 1000, price=50.0, volatility=0.025)
    keep = np.random.default_rng(seed).random(n) > 0.15
    keep[:late_start] = False
    keep[late_start : late_start + 3] = True
    return {"AAA": first, "BBB": second[keep]}


def run_both(
    class_name: str,
    params: Mapping[str, Any],
    data: MarketData,
    config: BacktestConfig,
    *,
    allow_short: bool,
    sizing: Mapping[str, Any],
) -> tuple[BacktestResult, BacktestResult]:
    strategy_config = config_validate(
        {
            "name": "equivalence",
            "class": class_name,
            "symbols": list(data.symbols),
            "allow_short": allow_short,
            "params": dict(params),
            "sizing": dict(sizing),
        }
    )
    engine = BacktestEngine()
    event = engine.run(strategy_config.build(), data, config, mode="event")
    vector = engine.run(strategy_config.build(), data, config, mode="vectorized")
    return event, vector


def assert_identical(event: BacktestResult, vector: BacktestResult) -> None:
    assert list(event.fills) == list(vector.fills)
    assert event.trades == vector.trades
    assert event.open_positions == vector.open_positions
    for name in ("equity", "cash", "gross_exposure"):
        assert np.array_equal(getattr(event.equity_curve, name), getattr(vector.equity_curve, name))
    assert event.metrics == vector.metrics
    assert event.final_equity == vector.final_equity
    for key in ("rejections", "rejection_count", "unfilled_orders"):
        assert event.metadata[key] == vector.metadata[key]


@pytest.mark.parametrize("strategy", BUILTINS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    seed=st.integers(0, 100_000),
    allow_short=st.booleans(),
    sizing=st.sampled_from(SIZINGS),
    fill_at=st.sampled_from(list(FillAt)),
    participation=st.sampled_from([None, PARTIAL]),
    impact=st.sampled_from([Decimal("0"), Decimal("25")]),
    two=st.booleans(),
    late_start=st.sampled_from([0, 0, 40]),
    n=st.integers(300, 600),
)
def test_event_and_vectorized_paths_give_identical_results(
    strategy: str,
    data: st.DataObject,
    seed: int,
    allow_short: bool,
    sizing: dict[str, Any],
    fill_at: FillAt,
    participation: Decimal | None,
    impact: Decimal,
    two: bool,
    late_start: int,
    n: int,
) -> None:
    params = data.draw(PARAMS[strategy], label="params")
    bars = MarketData.from_frames(frames(n, seed, two=two, late_start=late_start))
    config = BacktestConfig(
        fill_at=fill_at, max_volume_participation=participation, volume_impact_bps=impact
    )

    event, vector = run_both(strategy, params, bars, config, allow_short=allow_short, sizing=sizing)

    assert_identical(event, vector)


DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "sma_crossover": {"fast": 10, "slow": 30},
    "momentum": {"lookback": 20},
    "rsi_reversion": {"period": 5, "oversold": 35, "overbought": 65},
    "bollinger_reversion": {"window": 20},
}


@pytest.mark.parametrize("strategy", BUILTINS)
@pytest.mark.parametrize(
    ("fill_at", "participation"), [(FillAt.CLOSE, None), (FillAt.NEXT_OPEN, PARTIAL)]
)
def test_paths_agree_on_5000_bars(
    strategy: str, fill_at: FillAt, participation: Decimal | None
) -> None:
    data = MarketData.from_frames(frames(5_000, 11, two=True, late_start=100))
    config = BacktestConfig(fill_at=fill_at, max_volume_participation=participation)

    event, vector = run_both(
        strategy,
        DEFAULT_PARAMS[strategy],
        data,
        config,
        allow_short=True,
        sizing={"mode": "percent", "percent": 50},
    )

    assert len(event.trades) > 20  # not a comparison of two empty runs
    assert {t.side for t in event.trades} == {"long", "short"}
    assert {t.symbol for t in event.trades} == {"AAA", "BBB"}
    assert_identical(event, vector)


def test_a_small_volume_cap_really_splits_orders_into_partial_fills() -> None:
    """The cap the property test draws does what it is there for: orders fill over several bars."""
    data = MarketData.from_frames(frames(400, 3, two=True))
    config = BacktestConfig(max_volume_participation=PARTIAL)

    event, vector = run_both(
        "sma_crossover",
        {"fast": 5, "slow": 20},
        data,
        config,
        allow_short=True,
        sizing={"mode": "percent", "percent": 100},
    )

    bars_per_order: dict[int, set[datetime]] = {}
    for fill in event.fills:
        bars_per_order.setdefault(fill.order_id, set()).add(fill.ts)
    assert max(len(bars) for bars in bars_per_order.values()) > 1
    assert_identical(event, vector)

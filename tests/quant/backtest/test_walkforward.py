"""The walk-forward engine: window plans by hand, config and grid checks, choosing the best,
flagged windows, stability by hand, the engine end to end on synthetic bars, warmup and
look-ahead, jobs through JSON, and the report."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtests.reports import walk_forward_report_html
from quant.backtest import BacktestConfig, BacktestEngine, MarketData
from quant.backtest.engine import EngineMode
from quant.backtest.sample import random_walk_bars
from quant.backtest.walkforward import (
    Evaluation,
    Job,
    Objective,
    Segment,
    WalkForwardConfig,
    WalkForwardEngine,
    WalkForwardResult,
    WindowPlan,
    WindowType,
    choose_best,
    evaluate,
    grid_points,
    parameter_stability,
    plan_windows,
    run_job,
)
from quant.backtest.walkforward_eval import slice_bars
from quant.backtest.walkforward_plan import grid_expand
from quant.backtest.walkforward_report import generate_context, generate_json
from quant.errors import ValidationError
from quant.strategies.builtin.sma_crossover import SmaCrossoverParams
from quant.strategies.config import StrategyConfig, config_validate

GRID = {"fast": [5, 10], "slow": [20, 40]}


def sma_config(**params: Any) -> StrategyConfig:
    return config_validate(
        {
            "name": "wf_sma",
            "class": "sma_crossover",
            "symbols": ["SPY"],
            "params": params or {"fast": 10, "slow": 30},
        }
    )


def bars(n: int = 900, seed: int = 11) -> pd.DataFrame:
    return random_walk_bars(n, seed=seed, volatility=0.02)


def wf_config(**changes: Any) -> WalkForwardConfig:
    values: dict[str, Any] = {
        "in_sample_days": 200,
        "out_of_sample_days": 100,
        "step_days": 100,
        "parameter_grid": GRID,
    }
    values.update(changes)
    return WalkForwardConfig(**values)


@pytest.fixture(scope="module")
def result() -> WalkForwardResult:
    data = MarketData.from_frames({"SPY": bars()})
    return WalkForwardEngine().run(sma_config(), data, wf_config(), BacktestConfig())


# ------------------------------------------------------------------ window plans


def spans(plans: list[WindowPlan]) -> list[tuple[int, int, int, int]]:
    return [(p.is_start, p.is_end, p.oos_start, p.oos_end) for p in plans]


def test_rolling_windows_by_hand() -> None:
    config = WalkForwardConfig(in_sample_days=30, out_of_sample_days=10, step_days=10)
    assert spans(plan_windows(100, config)) == [
        (0, 30, 30, 40),
        (10, 40, 40, 50),
        (20, 50, 50, 60),
        (30, 60, 60, 70),
        (40, 70, 70, 80),
        (50, 80, 80, 90),
        (60, 90, 90, 100),
    ]
    assert [p.index for p in plan_windows(100, config)] == list(range(7))


def test_last_window_is_dropped_when_its_out_of_sample_part_does_not_fit() -> None:
    config = WalkForwardConfig(in_sample_days=30, out_of_sample_days=10, step_days=10)
    plans = plan_windows(99, config)
    assert len(plans) == 6
    assert spans(plans)[-1] == (50, 80, 80, 90)


def test_anchored_windows_grow_from_bar_zero() -> None:
    config = WalkForwardConfig(
        in_sample_days=30, out_of_sample_days=10, step_days=10, window_type=WindowType.ANCHORED
    )
    assert spans(plan_windows(75, config)) == [
        (0, 30, 30, 40),
        (0, 40, 40, 50),
        (0, 50, 50, 60),
        (0, 60, 60, 70),
    ]


def test_step_longer_than_out_of_sample_leaves_gaps() -> None:
    config = WalkForwardConfig(in_sample_days=30, out_of_sample_days=10, step_days=25)
    assert spans(plan_windows(100, config)) == [
        (0, 30, 30, 40),
        (25, 55, 55, 65),
        (50, 80, 80, 90),
    ]


def test_windows_longer_than_the_data_are_an_error() -> None:
    config = WalkForwardConfig(in_sample_days=80, out_of_sample_days=30, step_days=30)
    with pytest.raises(
        ValidationError,
        match="windows longer than the data: one window needs "
        "110 bars \\(in-sample 80 \\+ out-of-sample 30\\), the data has 100",
    ):
        plan_windows(100, config)


# ------------------------------------------------------------------ config and grid


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"in_sample_days": 0}, "in_sample_days: must be >= 1, got 0"),
        ({"out_of_sample_days": 2.5}, "out_of_sample_days: must be a whole number"),
        ({"step_days": True}, "step_days: must be a whole number"),
        ({"min_trades_required": -1}, "min_trades_required: must be >= 0"),
        ({"window_type": "sliding"}, "window_type: must be one of rolling, anchored"),
        ({"objective": "sharp"}, "objective: must be one of .* \\(did you mean 'sharpe'\\?\\)"),
        ({"parameter_grid": {"fast": []}}, "parameter_grid.fast: has no values"),
        ({"parameter_grid": {"fast": 5}}, "parameter_grid.fast: must be a list of values"),
        ({"parameter_grid": {"fast": [5, 5]}}, "parameter_grid.fast: 5 is listed twice"),
        ({"step_days": 50}, "step_days: 50 is below out_of_sample_days \\(100\\)"),
    ],
)
def test_config_names_the_bad_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        wf_config(**changes)


def test_config_round_trips_and_rejects_unknown_keys() -> None:
    config = wf_config(window_type="anchored", objective="profit_factor")
    assert config.window_type is WindowType.ANCHORED
    assert config.objective is Objective.PROFIT_FACTOR
    assert WalkForwardConfig.from_dict(json.loads(json.dumps(config.as_dict()))) == config
    with pytest.raises(
        ValidationError,
        match="unknown key\\(s\\) 'in_sample_dys' \\(did you mean 'in_sample_days'\\?\\)",
    ):
        WalkForwardConfig.from_dict({**config.as_dict(), "in_sample_dys": 5})


def test_grid_points_in_grid_order_with_coerced_values() -> None:
    points = grid_points({"fast": ["5", 10], "slow": [20, 40]}, SmaCrossoverParams)
    assert points == [
        {"fast": 5, "slow": 20},
        {"fast": 5, "slow": 40},
        {"fast": 10, "slow": 20},
        {"fast": 10, "slow": 40},
    ]
    assert grid_points({}, SmaCrossoverParams) == [{}]


def test_unknown_grid_parameter_suggests_the_right_name() -> None:
    with pytest.raises(
        ValidationError,
        match="unknown parameter\\(s\\) 'fats' \\(did you mean "
        "'fast'\\?\\) for SmaCrossoverParams; known: fast, slow",
    ):
        grid_points({"fats": [5]}, SmaCrossoverParams)


def test_invalid_grid_values_are_named() -> None:
    with pytest.raises(ValidationError) as caught:
        grid_points({"fast": [0, 5, "x"], "slow": [20]}, SmaCrossoverParams)
    message = caught.value.message
    assert "fast=0: Input should be greater than or equal to 1" in message
    assert "fast='x'" in message
    assert "fast=5" not in message


def test_combinations_the_strategy_rejects_together_are_skipped_and_listed() -> None:
    expansion = grid_expand({"fast": [10, 30], "slow": [20, 40]}, SmaCrossoverParams)
    assert expansion.points == [
        {"fast": 10, "slow": 20},
        {"fast": 10, "slow": 40},
        {"fast": 30, "slow": 40},
    ]
    assert [p for p, _ in expansion.skipped] == [{"fast": 30, "slow": 20}]
    assert "fast (30) must be below slow (20)" in expansion.skipped[0][1]
    with pytest.raises(ValidationError, match="no valid combination of values"):
        grid_points({"fast": [30], "slow": [20]}, SmaCrossoverParams)


def test_grid_points_merge_over_the_config_params() -> None:
    # slow=30 from the config: fast=40 is invalid with it, so only fast=5 remains
    expansion = grid_expand({"fast": [5, 40]}, SmaCrossoverParams, {"fast": 10, "slow": 30})
    assert expansion.points == [{"fast": 5}]


# ------------------------------------------------------------------ choosing the best


def evaluation(params: dict[str, Any], trades: int, **metrics: float | None) -> Evaluation:
    return Evaluation(
        window=0, params=params, segment=Segment.IN_SAMPLE, metrics=dict(metrics), trades=trades
    )


def test_choose_best_takes_the_highest_objective_among_points_with_enough_trades() -> None:
    grid = [
        evaluation({"fast": 1}, 5, sharpe_ratio=0.5),
        evaluation({"fast": 2}, 1, sharpe_ratio=3.0),  # too few trades
        evaluation({"fast": 3}, 4, sharpe_ratio=None),  # undefined: the worst
        evaluation({"fast": 4}, 9, sharpe_ratio=1.2),
        evaluation({"fast": 5}, 9, sharpe_ratio=1.2),  # a tie: the first wins
    ]
    assert choose_best(grid, Objective.SHARPE, 2) == ({"fast": 4}, "")


def test_profit_factor_without_losses_beats_any_finite_one() -> None:
    grid = [
        evaluation({"k": 1}, 3, profit_factor=2.5, winning_trades=2),
        evaluation({"k": 2}, 3, profit_factor=None, winning_trades=3),
        evaluation({"k": 3}, 0, profit_factor=None, winning_trades=0),
    ]
    assert choose_best(grid, Objective.PROFIT_FACTOR, 1) == ({"k": 2}, "")


def test_a_window_without_enough_trades_is_flagged() -> None:
    grid = [evaluation({"k": 1}, 2, sharpe_ratio=1.0), evaluation({"k": 2}, 0)]
    params, flag = choose_best(grid, Objective.SHARPE, 3)
    assert params is None
    assert flag == "no grid point reached 3 trade(s) in sample (most: 2 of 2 point(s))"


def test_min_trades_flag_reaches_the_result_and_the_curve_stays_in_cash() -> None:
    data = MarketData.from_frames({"SPY": bars(500)})
    config = wf_config(min_trades_required=1000)
    result = WalkForwardEngine().run(sma_config(), data, config, BacktestConfig())
    assert len(result.windows) == 3
    assert all(w.flag.startswith("no grid point reached 1000 trade(s)") for w in result.windows)
    assert all(w.best_params is None and w.out_of_sample is None for w in result.windows)
    assert result.trades == []
    assert np.all(result.equity_curve.equity == 100_000.0)
    document = result.as_dict()
    assert document["flagged_windows"] == 3
    assert document["windows"][0]["flag"].startswith("no grid point reached")
    assert document["parameter_stability"] == {}


# ------------------------------------------------------------------ stability by hand


def test_parameter_stability_by_hand() -> None:
    chosen = [
        {"fast": 5, "slow": 30, "kind": "a"},
        {"fast": 10, "slow": 30, "kind": "b"},
        None,
        {"fast": 5, "slow": 50, "kind": "b"},
    ]
    stability = parameter_stability(chosen)
    fast = stability["fast"]
    assert fast["values"] == [5, 10, None, 5]
    assert (fast["most_common"], fast["most_common_share"], fast["distinct"]) == (5, 2 / 3, 2)
    # mean 20/3, population std sqrt(((5-20/3)^2 * 2 + (10-20/3)^2) / 3) = sqrt(50/9)
    assert fast["coefficient_of_variation"] == pytest.approx(math.sqrt(50 / 9) / (20 / 3))
    assert stability["slow"]["most_common"] == 30
    kind = stability["kind"]
    assert (kind["most_common"], kind["coefficient_of_variation"]) == ("b", None)
    # a tie goes to the value chosen first
    assert parameter_stability([{"x": 2}, {"x": 1}])["x"]["most_common"] == 2


# ------------------------------------------------------------------ end to end


def test_end_to_end_windows_and_json_shape(result: WalkForwardResult) -> None:
    assert [spans([w.plan])[0] for w in result.windows] == [
        (0, 200, 200, 300),
        (100, 300, 300, 400),
        (200, 400, 400, 500),
        (300, 500, 500, 600),
        (400, 600, 600, 700),
        (500, 700, 700, 800),
        (600, 800, 800, 900),
    ]
    document = json.loads(json.dumps(result.as_dict(), allow_nan=False))
    assert {
        "windows",
        "aggregated_metrics",
        "aggregated_trades",
        "parameter_stability",
        "overfitting",
    } <= set(document)
    window = document["windows"][0]
    for key in (
        "in_sample_start",
        "in_sample_end",
        "out_of_sample_start",
        "out_of_sample_end",
        "params",
        "in_sample_metrics",
        "out_of_sample_metrics",
        "in_sample_trades",
        "out_of_sample_trades",
        "flag",
    ):
        assert key in window
    stamps = pd.DatetimeIndex(bars().index)
    assert window["in_sample_start"] == stamps[0].isoformat()
    assert window["in_sample_end"] == stamps[199].isoformat()
    assert window["out_of_sample_start"] == stamps[200].isoformat()
    assert window["out_of_sample_end"] == stamps[299].isoformat()
    assert len(window["grid_results"]) == 4
    assert set(document["overfitting"]) >= {"deflated_sharpe", "pbo", "degradation", "verdict"}
    assert result.overfitting.deflated_sharpe is not None
    assert result.overfitting.deflated_sharpe.n_trials == 4 * 7
    assert result.overfitting.pbo is not None
    assert document["aggregated_metrics"]["total_trades"] == len(document["aggregated_trades"])


def test_each_window_trades_its_in_sample_best(result: WalkForwardResult) -> None:
    for w in result.windows:
        assert w.in_sample is not None and w.best_params is not None
        best = max(g["objective"] for g in w.grid if g["trades"] >= 1)
        assert w.in_sample_objective == best
        assert w.out_of_sample is not None and w.out_of_sample.params == w.best_params


def test_stitched_curve_continues_each_segment_from_the_previous_end(
    result: WalkForwardResult,
) -> None:
    curve, initial = result.equity_curve, 100_000.0
    assert len(curve) == 7 * 100
    level = initial
    for k, w in enumerate(result.windows):
        assert w.out_of_sample is not None
        segment = np.array([v for _, v in w.out_of_sample.equity])
        np.testing.assert_allclose(curve.equity[k * 100 : (k + 1) * 100], segment - initial + level)
        level = float(curve.equity[(k + 1) * 100 - 1])
    pnl = sum((t.pnl for t in result.trades), Decimal(0))
    assert abs(result.metrics.final_equity - Decimal(initial) - pnl) <= Decimal("0.01") * len(
        result.windows
    )
    assert result.metrics.total_trades == len(result.trades)


def test_out_of_sample_trades_stay_inside_their_window(result: WalkForwardResult) -> None:
    for w in result.windows:
        assert w.out_of_sample is not None
        for trade in w.out_of_sample.trades_list:
            assert trade.entry_time >= w.out_of_sample_start
            assert trade.exit_time <= w.out_of_sample_end
        first_value = w.out_of_sample.equity[0][1]
        assert first_value <= 100_000.0  # starts flat with the initial capital (costs only)


def test_out_of_sample_starts_warm() -> None:
    """slow=30 needs 30 bars before its first signal: out-of-sample parts of 20 bars could
    never trade from a cold start, yet they do with the in-sample bars as warmup."""
    data = MarketData.from_frames({"SPY": bars(600)})
    config = wf_config(
        in_sample_days=100,
        out_of_sample_days=20,
        step_days=20,
        parameter_grid={"fast": [3, 5], "slow": [30]},
    )
    result = WalkForwardEngine().run(sma_config(), data, config, BacktestConfig())
    entries_early = [
        t
        for w in result.windows
        if w.out_of_sample
        for t in w.out_of_sample.trades_list
        if t.entry_time < pd.Timestamp(data.ts[w.plan.oos_start + 29], tz="UTC")
    ]
    assert entries_early


def test_out_of_sample_ignores_bars_after_its_end() -> None:
    """Replace every bar after window 2's out-of-sample end with an unrelated walk: windows
    0-2 keep their best params, metrics, trades and equity; later ones change."""
    frame = bars()
    plans = plan_windows(len(frame), wf_config())
    cut = plans[2].oos_end
    other = random_walk_bars(len(frame) - cut, seed=99, price=140.0, volatility=0.03)
    other.index = frame.index[cut:]
    changed = pd.concat([frame.iloc[:cut], other])

    def run(f: pd.DataFrame) -> WalkForwardResult:
        data = MarketData.from_frames({"SPY": f})
        return WalkForwardEngine().run(sma_config(), data, wf_config(), BacktestConfig())

    before, after = run(frame), run(changed)
    for k in range(3):
        a, b = before.windows[k], after.windows[k]
        assert (a.best_params, a.grid) == (b.best_params, b.grid)
        assert a.out_of_sample is not None and b.out_of_sample is not None
        assert a.out_of_sample.as_dict() == b.out_of_sample.as_dict()
    assert any(before.windows[k].grid != after.windows[k].grid for k in range(3, len(plans)))


def test_event_and_vectorized_out_of_sample_runs_agree() -> None:
    data = MarketData.from_frames({"SPY": bars(500)})
    plan = WindowPlan(0, 100, 300, 300, 400)
    runs = [
        evaluate(
            sma_config(),
            {"fast": 5, "slow": 20},
            data,
            plan,
            Segment.OUT_OF_SAMPLE,
            BacktestConfig(),
            mode=mode,
        )
        for mode in (EngineMode.EVENT, EngineMode.VECTORIZED)
    ]
    assert runs[0].trades > 0
    assert runs[0].as_dict() == runs[1].as_dict()


def test_open_position_at_the_segment_end_counts_as_a_trade_closed_there() -> None:
    data = MarketData.from_frames({"SPY": bars(500)})
    plan = WindowPlan(0, 0, 290, 290, 390)  # a position is open at bar 289
    for segment in Segment:
        e = evaluate(sma_config(), {"fast": 5, "slow": 20}, data, plan, segment, BacktestConfig())
        if e.segment is Segment.OUT_OF_SAMPLE:
            total = sum((t.pnl for t in e.trades_list), Decimal(0))
            assert abs(Decimal(repr(e.equity[-1][1])) - 100_000 - total) < Decimal("0.02")
            assert e.trades == len(e.trades_list)
            assert e.returns == []
        else:
            assert len(e.returns) == 290 and e.equity == []
            plain = BacktestEngine().run(
                sma_config(fast=5, slow=20).build(), slice_bars(data, 0, 290), BacktestConfig()
            )
            assert plain.open_positions  # the case under test: one is left open
            assert e.trades == len(plain.trades) + 1
            fills = sum((f.quantity * f.price for f in plain.fills), Decimal(0))
            assert e.traded_notional == pytest.approx(float(fills))


def test_jobs_and_evaluations_survive_json() -> None:
    data = MarketData.from_frames({"SPY": bars(500)})
    job = Job(
        sma_config(),
        BacktestConfig(),
        WindowPlan(1, 100, 300, 300, 400),
        {"fast": 5, "slow": 20},
        Segment.OUT_OF_SAMPLE,
    )
    again = Job.from_dict(json.loads(json.dumps(job.as_dict())))
    assert again == job
    evaluation = run_job(again, data)
    copied = Evaluation.from_dict(json.loads(json.dumps(evaluation.as_dict())))
    assert copied == evaluation


def test_progress_counts_every_job_once_and_ends_at_the_total() -> None:
    data = MarketData.from_frames({"SPY": bars(500)})
    calls: list[tuple[int, int]] = []
    WalkForwardEngine().run(
        sma_config(),
        data,
        wf_config(),
        BacktestConfig(),
        progress=lambda done, total: calls.append((done, total)),
    )
    total = 3 * (4 + 1)
    assert calls[-1] == (total, total)
    assert all(t == total for _, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert {d for d, _ in calls} == set(range(1, total + 1))


class RecordingExecutor:
    """An executor that runs jobs through JSON, as Celery would, in reverse order."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def map(
        self, jobs: Any, data: MarketData, progress: Callable[[int], None] | None = None
    ) -> list[Evaluation]:
        self.batches.append(len(jobs))
        out = {}
        for n, job in reversed(list(enumerate(jobs))):
            sent = Job.from_dict(json.loads(json.dumps(job.as_dict())))
            out[n] = Evaluation.from_dict(json.loads(json.dumps(run_job(sent, data).as_dict())))
        return [out[n] for n in range(len(jobs))]


def test_another_executor_gives_the_same_result(result: WalkForwardResult) -> None:
    executor = RecordingExecutor()
    data = MarketData.from_frames({"SPY": bars()})
    other = WalkForwardEngine().run(
        sma_config(), data, wf_config(), BacktestConfig(), executor=executor
    )
    assert executor.batches == [7 * 4, 7]
    assert other.as_dict() == result.as_dict()


# ------------------------------------------------------------------ report


def test_report_json_and_html(result: WalkForwardResult) -> None:
    document = generate_json(result, max_points=100)
    json.dumps(document, allow_nan=False)
    assert len(document["equity_curve"]) <= 100
    assert document["equity_curve_points"] == 700
    assert document["equity_curve_downsampled"] is True
    page = walk_forward_report_html(result)
    assert page.count('<script type="text/javascript">') == 1  # plotly.js once, inline
    assert "<script src=" not in page and "<link" not in page  # nothing fetched
    for div in ("chart-wf-equity", "chart-wf-params", "chart-wf-scatter", "chart-wf-logits"):
        assert f'id="{div}"' in page
    verdict = result.overfitting.as_dict()["verdict"]
    assert verdict.split(":")[0] in page
    assert "fast=" in page


def test_report_escapes_text() -> None:
    config = config_validate(
        {
            "name": "x",
            "class": "sma_crossover",
            "symbols": ["SPY"],
            "description": "<script>alert(1)</script>",
            "params": {"fast": 5, "slow": 20},
        }
    )
    data = MarketData.from_frames({"SPY": bars(400)})
    result = WalkForwardEngine().run(config, data, wf_config(), BacktestConfig())
    object.__setattr__(result.windows[0], "flag", "<b>odd</b>")
    page = walk_forward_report_html(result)
    assert "<b>odd</b>" not in page and "&lt;b&gt;odd&lt;/b&gt;" in page


def test_report_escapes_a_hostile_strategy_name(result: WalkForwardResult) -> None:
    # config_validate refuses such a name; a report must not rely on that
    hostile = result.strategy_config.model_copy(update={"name": "<script>alert(1)</script>"})
    result = dataclasses.replace(result, strategy_config=hostile)
    page = walk_forward_report_html(result)
    assert "<script>alert(1)</script>" not in page
    assert "<h1>&lt;script&gt;alert(1)&lt;/script&gt;</h1>" in page
    assert "<title>Walk-forward report: &lt;script&gt;alert(1)&lt;/script&gt;</title>" in page


def test_report_page_data(result: WalkForwardResult) -> None:
    report = generate_context(result)
    assert report.title == f"Walk-forward report: {result.strategy_config.name}"
    assert [chart.div_id for chart in report.charts] == [
        "chart-wf-equity",
        "chart-wf-params",
        "chart-wf-scatter",
        "chart-wf-logits",
    ]
    assert report.verdict == result.overfitting.as_dict()["verdict"]
    assert report.verdict_level in ("ok", "warn", "bad")
    assert report.verdict_figures[0].label == "PBO (CSCV)"
    assert len(report.windows) == len(result.windows)
    assert report.windows[0].params.startswith("fast=")
    assert {row.name for row in report.stability} == set(result.parameter_stability)
    assert all(row.sign == "" for row in report.metrics)

"""Walk-forward optimization: optimize each window in sample, trade its best out of sample.

No Django here. :class:`WalkForwardEngine` plans the windows (``walkforward_plan``), runs
every grid point in sample on each window as one batch of jobs, picks each window's best
(:func:`choose_best`), runs those out of sample as a second batch, and gathers everything
(:func:`aggregate`). Jobs go through an :class:`Executor`: in process by default, Celery
workers for the Django shell; the results do not depend on which.

Stitched equity: out-of-sample segments are joined in window order and each continues from
the previous segment's ending equity by *adding* the segment's profit and loss in money
(every out-of-sample run trades the same initial capital, so the stitched curve, the trades
and the fills agree to the cent). A flagged window (no grid point reached the minimum of
trades) holds cash through its out-of-sample bars: a flat segment, no trades.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from quant.backtest.config import BacktestConfig
from quant.backtest.data import MarketData
from quant.backtest.engine import EngineMode
from quant.backtest.metrics import compute_metrics, periods_per_year
from quant.backtest.overfitting import (
    OverfittingStats,
    deflated_sharpe_ratio,
    degradation,
    probability_of_backtest_overfitting,
    sharpe,
)
from quant.backtest.report import jsonable
from quant.backtest.results import EquityCurve, PerformanceMetrics, Trade, money
from quant.backtest.walkforward_eval import (
    Evaluation,
    Executor,
    Job,
    LocalExecutor,
    Segment,
    evaluate,
    run_job,
)
from quant.backtest.walkforward_plan import (
    Objective,
    WalkForwardConfig,
    WindowPlan,
    WindowType,
    grid_expand,
    grid_points,
    objective_value,
    plan_windows,
)
from quant.strategies.config import StrategyConfig

__all__ = [
    "Evaluation",
    "Executor",
    "Job",
    "LocalExecutor",
    "Objective",
    "Segment",
    "WalkForwardConfig",
    "WalkForwardEngine",
    "WalkForwardResult",
    "WindowPlan",
    "WindowResult",
    "WindowType",
    "aggregate",
    "choose_best",
    "evaluate",
    "grid_points",
    "parameter_stability",
    "plan_windows",
    "run_job",
]

Progress = Callable[[int, int], None]


def choose_best(
    evaluations: Sequence[Evaluation], objective: Objective, min_trades: int
) -> tuple[dict[str, Any] | None, str]:
    """The in-sample best of one window's grid points, or ``None`` and the reason (the flag).

    Only points with at least ``min_trades`` trades compete; the highest objective wins, an
    undefined objective counts as the worst, ties go to the first point in grid order.
    """
    eligible = [e for e in evaluations if e.trades >= min_trades]
    if not eligible:
        most = max((e.trades for e in evaluations), default=0)
        return None, (
            f"no grid point reached {min_trades} trade(s) in sample "
            f"(most: {most} of {len(evaluations)} point(s))"
        )
    scored = [(objective_value(e.metrics, objective), e) for e in eligible]
    best_value, best = max(scored, key=lambda pair: -math.inf if pair[0] is None else pair[0])
    if best_value is None:
        return best.params, f"objective {objective.value} undefined for every eligible grid point"
    return best.params, ""


@dataclass(frozen=True)
class WindowResult:
    plan: WindowPlan
    in_sample_start: datetime  # first and last bar start of each part (inclusive)
    in_sample_end: datetime
    out_of_sample_start: datetime
    out_of_sample_end: datetime
    best_params: dict[str, Any] | None
    in_sample: Evaluation | None  # the best point's in-sample evaluation
    out_of_sample: Evaluation | None
    flag: str
    grid: list[dict[str, Any]]  # per grid point in sample: params, objective, trades
    objective: Objective

    @property
    def in_sample_objective(self) -> float | None:
        return objective_value(self.in_sample.metrics, self.objective) if self.in_sample else None

    @property
    def out_of_sample_objective(self) -> float | None:
        if self.out_of_sample is None:
            return None
        return objective_value(self.out_of_sample.metrics, self.objective)

    def as_dict(self) -> dict[str, Any]:
        is_, oos = self.in_sample, self.out_of_sample
        return jsonable(
            {
                "index": self.plan.index,
                "bars": self.plan.as_dict(),
                "in_sample_start": self.in_sample_start,
                "in_sample_end": self.in_sample_end,
                "out_of_sample_start": self.out_of_sample_start,
                "out_of_sample_end": self.out_of_sample_end,
                "params": self.best_params,
                "in_sample_metrics": is_.metrics if is_ else None,
                "out_of_sample_metrics": oos.metrics if oos else None,
                "in_sample_trades": is_.trades if is_ else None,
                "out_of_sample_trades": oos.trades if oos else None,
                "in_sample_objective": self.in_sample_objective,
                "out_of_sample_objective": self.out_of_sample_objective,
                "flag": self.flag,
                "grid_results": self.grid,
            }
        )


@dataclass
class WalkForwardResult:
    strategy_config: StrategyConfig
    wf_config: WalkForwardConfig
    backtest_config: BacktestConfig
    windows: list[WindowResult]
    equity_curve: EquityCurve  # stitched out of sample
    trades: list[Trade]  # every out-of-sample trade, in window order
    metrics: PerformanceMetrics  # of the stitched curve and its trades
    parameter_stability: dict[str, dict[str, Any]]
    overfitting: OverfittingStats
    grid_size: int
    skipped_grid_points: list[dict[str, Any]] = field(default_factory=list)

    @property
    def flagged_windows(self) -> list[WindowResult]:
        return [w for w in self.windows if w.flag]

    def equity_points(self) -> list[dict[str, Any]]:
        curve = self.equity_curve
        stamps = pd.DatetimeIndex(curve.ts, tz="UTC")
        return [
            {"ts": ts.isoformat(), "equity": str(money(value))}
            for ts, value in zip(stamps, curve.equity.tolist(), strict=True)
        ]

    def as_dict(self) -> dict[str, Any]:
        """The JSON document of the issue (every value JSON-safe; money as strings)."""
        return {
            "strategy": self.strategy_config.name,
            "strategy_class": self.strategy_config.class_name,
            "strategy_config": self.strategy_config.as_dict(),
            "walk_forward_config": self.wf_config.as_dict(),
            "backtest_config": jsonable(self.backtest_config.as_dict()),
            "grid_size": self.grid_size,
            "skipped_grid_points": jsonable(self.skipped_grid_points),
            "windows": [w.as_dict() for w in self.windows],
            "flagged_windows": len(self.flagged_windows),
            "aggregated_metrics": jsonable(self.metrics.as_dict()),
            "aggregated_trades": [t.as_dict() for t in self.trades],
            "equity_curve": self.equity_points(),
            "parameter_stability": jsonable(self.parameter_stability),
            "overfitting": jsonable(self.overfitting.as_dict()),
        }


class WalkForwardEngine:
    """Runs a walk-forward optimization (see the module docstring)."""

    def run(
        self,
        strategy_config: StrategyConfig,
        data: MarketData,
        wf_config: WalkForwardConfig,
        backtest_config: BacktestConfig,
        executor: Executor | None = None,
        progress: Progress | None = None,
        mode: EngineMode | None = None,
    ) -> WalkForwardResult:
        """``progress(done, total)`` counts jobs: windows x grid points in sample, then one
        per window out of sample (a flagged window's counts as done at once)."""
        executor = executor or LocalExecutor()
        plans = plan_windows(len(data), wf_config)
        expansion = grid_expand(
            wf_config.parameter_grid,
            strategy_config.strategy_class().Params,
            strategy_config.params,
        )
        points = expansion.points
        total = len(plans) * (len(points) + 1)

        def job(plan: WindowPlan, params: dict[str, Any], segment: Segment) -> Job:
            return Job(strategy_config, backtest_config, plan, params, segment, mode)

        def report(offset: int) -> Callable[[int], None] | None:
            return None if progress is None else (lambda done: progress(offset + done, total))

        first = [job(plan, p, Segment.IN_SAMPLE) for plan in plans for p in points]
        in_sample = executor.map(first, data, report(0))
        chosen = [
            choose_best(
                in_sample[k * len(points) : (k + 1) * len(points)],
                wf_config.objective,
                wf_config.min_trades_required,
            )
            for k in range(len(plans))
        ]
        second = [
            job(plan, params, Segment.OUT_OF_SAMPLE)
            for plan, (params, _) in zip(plans, chosen, strict=True)
            if params is not None
        ]
        flagged = len(plans) - len(second)
        out_of_sample = executor.map(second, data, report(len(first) + flagged))
        if progress is not None:
            progress(total, total)
        return aggregate(
            strategy_config=strategy_config,
            wf_config=wf_config,
            backtest_config=backtest_config,
            data=data,
            plans=plans,
            points=points,
            in_sample=in_sample,
            out_of_sample=out_of_sample,
            skipped=[p for p, _ in expansion.skipped],
        )


def aggregate(
    *,
    strategy_config: StrategyConfig,
    wf_config: WalkForwardConfig,
    backtest_config: BacktestConfig,
    data: MarketData,
    plans: Sequence[WindowPlan],
    points: Sequence[dict[str, Any]],
    in_sample: Sequence[Evaluation],
    out_of_sample: Sequence[Evaluation],
    skipped: Sequence[dict[str, Any]] = (),
) -> WalkForwardResult:
    """Gather the evaluations of a run (in any order) into one result."""
    objective, min_trades = wf_config.objective, wf_config.min_trades_required
    stamps = pd.DatetimeIndex(data.ts, tz="UTC").to_pydatetime()
    by_window: dict[int, list[Evaluation]] = {p.index: [] for p in plans}
    for evaluation in in_sample:
        by_window[evaluation.window].append(evaluation)
    oos_by_window = {e.window: e for e in out_of_sample}
    order = {_key(p): n for n, p in enumerate(points)}
    windows = []
    for plan in plans:
        grid = sorted(by_window[plan.index], key=lambda e: order.get(_key(e.params), len(order)))
        best, flag = choose_best(grid, objective, min_trades)
        chosen = next((e for e in grid if best is not None and e.params == best), None)
        oos = oos_by_window.get(plan.index) if best is not None else None
        windows.append(
            WindowResult(
                plan=plan,
                in_sample_start=stamps[plan.is_start],
                in_sample_end=stamps[plan.is_end - 1],
                out_of_sample_start=stamps[plan.oos_start],
                out_of_sample_end=stamps[plan.oos_end - 1],
                best_params=best,
                in_sample=chosen,
                out_of_sample=oos,
                flag=flag,
                grid=[
                    {
                        "params": e.params,
                        "objective": objective_value(e.metrics, objective),
                        "trades": e.trades,
                    }
                    for e in grid
                ],
                objective=objective,
            )
        )
    curve = stitch(windows, data, float(backtest_config.initial_capital))
    trades = [t for w in windows if w.out_of_sample for t in w.out_of_sample.trades_list]
    notional = sum(w.out_of_sample.traded_notional for w in windows if w.out_of_sample)
    metrics = compute_metrics(
        equity=curve,
        trades=trades,
        initial_capital=backtest_config.initial_capital,
        periods_per_year=periods_per_year(backtest_config.timeframe),
        traded_notional=notional,
    )
    return WalkForwardResult(
        strategy_config=strategy_config,
        wf_config=wf_config,
        backtest_config=backtest_config,
        windows=windows,
        equity_curve=curve,
        trades=trades,
        metrics=metrics,
        parameter_stability=parameter_stability([w.best_params for w in windows]),
        overfitting=_overfitting(
            windows, by_window, curve, float(backtest_config.initial_capital), len(points)
        ),
        grid_size=len(points),
        skipped_grid_points=list(skipped),
    )


def _key(params: dict[str, Any]) -> str:
    return repr(sorted(params.items()))


def stitch(windows: Sequence[WindowResult], data: MarketData, initial: float) -> EquityCurve:
    """The out-of-sample segments joined, each adding its P&L to the previous segment's end."""
    ts, equity, cash, gross = [], [], [], []
    level = initial
    for w in windows:
        plan, oos = w.plan, w.out_of_sample
        ts.append(data.ts[plan.oos_start : plan.oos_end])
        if oos is None:  # flagged: cash held through the segment
            flat = np.full(plan.oos_end - plan.oos_start, level)
            equity.append(flat)
            cash.append(flat)
            gross.append(np.zeros(len(flat)))
            continue
        values = np.array([v for _, v in oos.equity], dtype=np.float64)
        equity.append(values - initial + level)
        cash.append(np.asarray(oos.cash, dtype=np.float64) - initial + level)
        gross.append(np.asarray(oos.gross_exposure, dtype=np.float64))
        level = float(equity[-1][-1]) if len(values) else level
    return EquityCurve(
        ts=np.concatenate(ts),
        equity=np.concatenate(equity),
        cash=np.concatenate(cash),
        gross_exposure=np.concatenate(gross),
    )


def parameter_stability(chosen: Sequence[dict[str, Any] | None]) -> dict[str, dict[str, Any]]:
    """Per parameter: its value in each window (``None`` where the window is flagged), the
    most common value (ties: the one chosen first) and its share of the unflagged windows,
    the number of distinct values, and for numbers the coefficient of variation
    ``std / |mean|`` (population std; ``None`` when the mean is 0)."""
    names: list[str] = []
    for params in chosen:
        for name in params or {}:
            if name not in names:
                names.append(name)
    stability: dict[str, dict[str, Any]] = {}
    for name in names:
        values = [None if params is None else params.get(name) for params in chosen]
        present = [v for v in values if v is not None]
        counts = Counter(repr(v) for v in present)
        common_repr, common_count = counts.most_common(1)[0] if counts else (None, 0)
        common = next((v for v in present if repr(v) == common_repr), None)
        numeric = bool(present) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in present
        )
        cv = None
        if numeric:
            array = np.asarray(present, dtype=np.float64)
            mean = float(array.mean())
            cv = float(array.std()) / abs(mean) if mean != 0 else None
        stability[name] = {
            "values": values,
            "most_common": common,
            "most_common_share": common_count / len(present) if present else None,
            "distinct": len(counts),
            "coefficient_of_variation": cv,
        }
    return stability


def _overfitting(
    windows: Sequence[WindowResult],
    in_sample: dict[int, list[Evaluation]],
    curve: EquityCurve,
    initial: float,
    grid_size: int,
) -> OverfittingStats:
    """DSR of the stitched out-of-sample returns against every in-sample trial (N = grid
    size x windows); PBO pooled over the windows' in-sample return matrices; degradation of
    the objective from in sample to out of sample per unflagged window."""
    trials = [sharpe(e.returns) for evaluations in in_sample.values() for e in evaluations]
    previous = np.concatenate(([initial], curve.equity[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = curve.equity / previous - 1.0
    dsr = deflated_sharpe_ratio(
        returns, [s for s in trials if s is not None], n_trials=grid_size * len(windows)
    )
    matrices = []
    for evaluations in in_sample.values():
        lengths = {len(e.returns) for e in evaluations}
        if len(evaluations) >= 2 and len(lengths) == 1:
            matrices.append(np.column_stack([e.returns for e in evaluations]))
    pbo = probability_of_backtest_overfitting(matrices) if matrices else None
    deg = degradation(
        [w.in_sample_objective for w in windows if w.out_of_sample],
        [w.out_of_sample_objective for w in windows if w.out_of_sample],
    )
    return OverfittingStats(deflated_sharpe=dsr, pbo=pbo, degradation=deg)

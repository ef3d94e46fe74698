"""One walk-forward job: a strategy with one grid point over one window's segment.

Jobs and evaluations are plain values (picklable, and JSON through ``as_dict``/``from_dict``)
so that Celery workers can run them: :func:`run_job` is the whole worker side.

Segments:

* **in sample**: the strategy runs on the in-sample bars alone (``[is_start, is_end)``) and
  starts cold there, as any backtest does.
* **out of sample**: the strategy gets the in-sample bars first as *warmup* and then the
  out-of-sample bars (``[is_start, oos_end)``), but every target it gives before the first
  out-of-sample bar is dropped, so its indicators are warm while the account starts flat at
  the out-of-sample start with the initial capital: no in-sample trade, no position carried
  over, and it enters on the first signal it gives out of sample. No bar after ``oos_end``
  is ever handed to the engine (look-ahead impossible by construction).

Metrics of a segment are computed on that segment's bars only. A position still open at the
end of a segment is listed as a trade closed at the segment's last close without exit costs,
exactly as the equity curve values it, so trades and equity agree to the cent.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import numpy as np
import pandas as pd

from quant.backtest.config import BacktestConfig
from quant.backtest.data import MarketData
from quant.backtest.engine import BacktestEngine, EngineMode
from quant.backtest.metrics import compute_metrics, periods_per_year
from quant.backtest.results import BacktestResult, EquityCurve, Trade
from quant.backtest.walkforward_plan import WindowPlan
from quant.strategies.base import (
    Fill,
    FloatArray,
    OrderRequest,
    PortfolioState,
    PriceBar,
    Signal,
    Strategy,
)
from quant.strategies.config import StrategyConfig, config_validate


class Segment(enum.StrEnum):
    IN_SAMPLE = "in_sample"
    OUT_OF_SAMPLE = "out_of_sample"


@dataclass(frozen=True)
class Evaluation:
    """What one job produced.

    ``metrics`` are the segment's ``PerformanceMetrics`` as floats (``None`` = undefined);
    ``trades`` counts the segment's trades (open positions closed at its end included).
    ``traded_notional`` is the money traded in the segment. Out of sample only: ``equity``
    (bar start, equity) per out-of-sample bar with ``cash`` and ``gross_exposure`` on the
    same bars, and ``trades_list``. In sample only: ``returns``, the per-bar returns (for
    CSCV and the deflated Sharpe ratio).
    """

    window: int
    params: dict[str, Any]
    segment: Segment
    metrics: dict[str, float | None]
    trades: int
    equity: list[tuple[datetime, float]] = field(default_factory=list)
    cash: list[float] = field(default_factory=list)
    gross_exposure: list[float] = field(default_factory=list)
    trades_list: list[Trade] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    traded_notional: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "params": self.params,
            "segment": self.segment.value,
            "metrics": self.metrics,
            "trades": self.trades,
            "equity": [[ts.isoformat(), value] for ts, value in self.equity],
            "cash": self.cash,
            "gross_exposure": self.gross_exposure,
            "trades_list": [trade.as_dict() for trade in self.trades_list],
            "returns": self.returns,
            "traded_notional": self.traded_notional,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        return cls(
            window=int(data["window"]),
            params=dict(data["params"]),
            segment=Segment(data["segment"]),
            metrics=dict(data["metrics"]),
            trades=int(data["trades"]),
            equity=[(datetime.fromisoformat(ts), float(v)) for ts, v in data.get("equity", [])],
            cash=[float(v) for v in data.get("cash", [])],
            gross_exposure=[float(v) for v in data.get("gross_exposure", [])],
            trades_list=[trade_from_dict(t) for t in data.get("trades_list", [])],
            returns=[float(r) for r in data.get("returns", [])],
            traded_notional=float(data.get("traded_notional", 0.0)),
        )


def trade_from_dict(data: Mapping[str, Any]) -> Trade:
    """The inverse of ``Trade.as_dict`` (``return_pct`` is derived, so it is not read)."""
    return Trade(
        symbol=str(data["symbol"]),
        side=str(data["side"]),
        quantity=Decimal(data["quantity"]),
        entry_time=datetime.fromisoformat(data["entry_time"]),
        entry_price=Decimal(data["entry_price"]),
        exit_time=datetime.fromisoformat(data["exit_time"]),
        exit_price=Decimal(data["exit_price"]),
        commission=Decimal(data["commission"]),
        pnl=Decimal(data["pnl"]),
        bars_held=int(data["bars_held"]),
    )


@dataclass(frozen=True)
class Job:
    """Everything a worker needs besides the bars: picklable, JSON through ``as_dict``."""

    strategy_config: StrategyConfig
    backtest_config: BacktestConfig
    plan: WindowPlan
    params: dict[str, Any]
    segment: Segment
    mode: EngineMode | None = None  # None: vectorized when the strategy has that form

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy_config": self.strategy_config.as_dict(),
            "backtest_config": self.backtest_config.as_dict(),
            "plan": self.plan.as_dict(),
            "params": self.params,
            "segment": self.segment.value,
            "mode": self.mode.value if self.mode else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        mode = data.get("mode")
        return cls(
            strategy_config=config_validate(data["strategy_config"], source="strategy_config"),
            backtest_config=BacktestConfig.from_dict(data["backtest_config"]),
            plan=WindowPlan.from_dict(data["plan"]),
            params=dict(data["params"]),
            segment=Segment(data["segment"]),
            mode=EngineMode(mode) if mode else None,
        )


def run_job(job: Job, data: MarketData) -> Evaluation:
    """Run one job on the full data set (the job's window picks its bars)."""
    return evaluate(
        job.strategy_config,
        job.params,
        data,
        job.plan,
        job.segment,
        job.backtest_config,
        mode=job.mode,
    )


JobsDone = Callable[[int], None]


class Executor(Protocol):
    """Runs a batch of jobs and returns their evaluations in the jobs' order.

    ``progress`` (when given) is called with the number of jobs of this batch finished so
    far, whenever that number grows.
    """

    def map(
        self, jobs: Sequence[Job], data: MarketData, progress: JobsDone | None = None
    ) -> list[Evaluation]: ...


class LocalExecutor:
    """Runs every job in this process, one after the other."""

    def map(
        self, jobs: Sequence[Job], data: MarketData, progress: JobsDone | None = None
    ) -> list[Evaluation]:
        results = []
        for done, job in enumerate(jobs, start=1):
            results.append(run_job(job, data))
            if progress is not None:
                progress(done)
        return results


def evaluate(
    strategy_config: StrategyConfig,
    params: Mapping[str, Any],
    data: MarketData,
    plan: WindowPlan,
    segment: Segment | str,
    backtest_config: BacktestConfig,
    mode: EngineMode | str | None = None,
) -> Evaluation:
    """Backtest ``params`` (merged over the config's own) on one segment of one window."""
    segment = Segment(segment)
    config = strategy_config.model_copy(update={"params": {**strategy_config.params, **params}})
    strategy = config.build()
    if mode is None:
        mode = EngineMode.VECTORIZED if strategy.supports_vectorized else EngineMode.EVENT
    if segment is Segment.IN_SAMPLE:
        start, trade_from = plan.is_start, plan.is_start
        stop = plan.is_end
    else:
        start, trade_from, stop = plan.is_start, plan.oos_start, plan.oos_end
    window = slice_bars(data, start, stop)
    offset = trade_from - start
    runner: Strategy = strategy if offset == 0 else TradingFrom(strategy, window, offset)
    result = BacktestEngine().run(
        runner, window, backtest_config, mode=mode, strategy_config=config.as_dict()
    )
    return _evaluation(result, plan.index, dict(params), segment, offset, backtest_config)


def slice_bars(data: MarketData, start: int, stop: int) -> MarketData:
    """Bars ``[start, stop)`` of ``data`` (views of its read-only arrays, nothing copied)."""
    return MarketData(
        ts=data.ts[start:stop],
        symbols=data.symbols,
        columns={
            symbol: {name: array[start:stop] for name, array in columns.items()}
            for symbol, columns in data.columns.items()
        },
    )


class TradingFrom(Strategy):
    """Wraps a strategy so that it sees every bar but trades only from bar ``offset`` on.

    Targets before ``offset`` are dropped in both engine paths (the event path by timestamp,
    the vectorized path by index), so both stay equivalent.
    """

    def __init__(self, inner: Strategy, data: MarketData, offset: int) -> None:
        super().__init__(inner.params)
        self.inner, self.offset = inner, offset
        self.name = inner.name  # type: ignore[misc]
        self.interface_version = inner.interface_version  # type: ignore[misc]
        self.supports_vectorized = inner.supports_vectorized  # type: ignore[misc]
        self.symbols, self.sizing, self.allow_short = inner.symbols, inner.sizing, inner.allow_short
        self._first_live: datetime = pd.Timestamp(data.ts[offset], tz="UTC").to_pydatetime()

    def on_market_data(self, bar: PriceBar) -> None:
        self.inner.on_market_data(bar)

    def generate_signals(self, state: PortfolioState) -> list[Signal]:
        signals = self.inner.generate_signals(state)  # always asked: it may keep state
        return signals if state.ts >= self._first_live else []

    def risk_check(
        self, signals: Sequence[Signal], portfolio: PortfolioState
    ) -> list[OrderRequest]:
        return self.inner.risk_check(signals, portfolio)

    def on_fill(self, fill: Fill) -> None:
        self.inner.on_fill(fill)

    def daily_close(self) -> None:
        self.inner.daily_close()

    def signals_frame(self, bars: Mapping[str, Mapping[str, FloatArray]]) -> dict[str, FloatArray]:
        targets = self.inner.signals_frame(bars)
        muted: dict[str, FloatArray] = {}
        for symbol, values in targets.items():
            array = np.array(values, dtype=np.float64)  # a copy: the inner's array stays
            array[: self.offset] = np.nan
            muted[symbol] = array
        return muted


def _evaluation(
    result: BacktestResult,
    window: int,
    params: dict[str, Any],
    segment: Segment,
    offset: int,
    config: BacktestConfig,
) -> Evaluation:
    full = result.equity_curve
    curve = EquityCurve(
        ts=full.ts[offset:],
        equity=full.equity[offset:],
        cash=full.cash[offset:],
        gross_exposure=full.gross_exposure[offset:],
    )
    trades = list(result.trades) + _closed_at_end(result, curve)
    # from the trades' average prices: the same sum as over the fills, without turning every
    # fill into Decimals (a position closed at the segment's end had no exit fill)
    notional = float(
        sum((t.quantity * t.entry_price for t in trades), Decimal(0))
        + sum((t.quantity * t.exit_price for t in result.trades), Decimal(0))
    )
    metrics = compute_metrics(
        equity=curve,
        trades=trades,
        initial_capital=config.initial_capital,
        periods_per_year=periods_per_year(config.timeframe),
        traded_notional=notional,
    )
    values = {k: (float(v) if isinstance(v, Decimal) else v) for k, v in metrics.__dict__.items()}
    evaluation = Evaluation(
        window=window,
        params=params,
        segment=segment,
        metrics=values,
        trades=len(trades),
        traded_notional=notional,
    )
    if segment is Segment.IN_SAMPLE:
        initial = float(config.initial_capital)
        previous = np.concatenate(([initial], curve.equity[:-1]))
        with np.errstate(divide="ignore", invalid="ignore"):
            returns = np.nan_to_num(curve.equity / previous - 1.0, nan=0.0, posinf=0.0, neginf=0.0)
        return _replace(evaluation, returns=returns.tolist())
    stamps = pd.DatetimeIndex(curve.ts, tz="UTC").to_pydatetime().tolist()
    return _replace(
        evaluation,
        equity=list(zip(stamps, curve.equity.tolist(), strict=True)),
        cash=curve.cash.tolist(),
        gross_exposure=curve.gross_exposure.tolist(),
        trades_list=trades,
    )


def _replace(evaluation: Evaluation, **changes: Any) -> Evaluation:
    return Evaluation(**{**evaluation.__dict__, **changes})


def _closed_at_end(result: BacktestResult, curve: EquityCurve) -> list[Trade]:
    """Positions open at the segment's end as trades closed at its last close (no exit cost)."""
    if not result.open_positions or not len(curve):
        return []
    last = pd.Timestamp(curve.ts[-1], tz="UTC")
    stamps = result.equity_curve.ts
    trades = []
    for p in result.open_positions:
        entry = np.datetime64(pd.Timestamp(p.entry_time).tz_convert("UTC").tz_localize(None))
        entry_bar = int(np.searchsorted(stamps, entry))
        trades.append(
            Trade(
                symbol=p.symbol,
                side=p.side,
                quantity=p.quantity,
                entry_time=p.entry_time,
                entry_price=p.entry_price,
                exit_time=last.to_pydatetime(),
                exit_price=p.last_price,
                commission=(
                    (p.last_price - p.entry_price) * p.quantity * (1 if p.side == "long" else -1)
                    - p.unrealized_pnl
                ).quantize(Decimal("0.01")),
                pnl=p.unrealized_pnl,
                bars_held=len(stamps) - 1 - entry_bar,
            )
        )
    return trades

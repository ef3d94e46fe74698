"""The backtest engine: an event-driven loop and a vectorized path over one fill model.

Event-driven: each bar goes to ``strategy.on_market_data`` in time order, then
``generate_signals`` answers with targets; the strategy never holds a bar from the future.
Vectorized: ``strategy.signals_frame`` computes the targets over whole arrays, and only the
bars where a target changes (or an order is working) are visited; equity is rebuilt with
NumPy from the fills. Both paths drive the same ``ExecutionSimulator`` with the same calls in
the same order, so they produce the same trades, to the last bit, for any strategy whose two
forms agree.
"""

from __future__ import annotations

import enum
import gc
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd

from quant.backtest.config import BacktestConfig
from quant.backtest.data import COLUMNS, MarketData
from quant.backtest.metrics import compute_metrics, periods_per_year
from quant.backtest.results import (
    BacktestResult,
    EquityCurve,
    FillRecord,
    LazyRecords,
    OpenPosition,
    Trade,
    money,
    price,
    quantity,
)
from quant.backtest.simulator import ExecutionSimulator
from quant.errors import ApplicationError, ValidationError
from quant.strategies.base import Fill, FloatArray, PriceBar, Signal, Strategy, Target

ProgressCallback = Callable[[float], None]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CHECKPOINT_BARS = 2_000  # the event loop checks for cancel and reports progress this often
TARGETS = {-1.0: Target.SHORT, 0.0: Target.FLAT, 1.0: Target.LONG}
SIGNAL_DEFAULTS = tuple(Signal._field_defaults[f] for f in Signal._fields[2:])
CancelCheck = Callable[[], bool]


class EngineMode(enum.StrEnum):
    EVENT = "event"
    VECTORIZED = "vectorized"


class BacktestCancelled(ApplicationError):
    code = "cancelled"
    http_status = 409


class StrategyFailed(ApplicationError):
    """The strategy's own code raised: the message names the strategy, the bar and the error."""

    code = "strategy_error"
    http_status = 422


class BacktestEngine:
    """Runs one strategy over aligned bars with one ``BacktestConfig``."""

    def run(
        self,
        strategy: Strategy,
        data: MarketData,
        config: BacktestConfig,
        *,
        mode: EngineMode | str = EngineMode.EVENT,
        strategy_config: Mapping[str, Any] | None = None,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> BacktestResult:
        mode = EngineMode(mode)
        unknown = [s for s in strategy.symbols if s not in data.symbols]
        if unknown:
            raise ValidationError(f"no bars given for the strategy's symbols {', '.join(unknown)}")
        if mode is EngineMode.VECTORIZED and not strategy.supports_vectorized:
            raise ValidationError(f"strategy {strategy.name!r} has no vectorized form")
        run = _Run(strategy, data, config, progress, should_cancel)
        # The run makes short-lived, acyclic objects by the hundred thousand (bars, signals,
        # orders, fills): reference counting frees them, and the cyclic collector would only
        # rescan the run's big lists again and again (a third of a vectorized run's time).
        collecting = gc.isenabled()
        gc.disable()
        try:
            curve = run.events() if mode is EngineMode.EVENT else run.vectorized()
            return run.result(curve, mode, dict(strategy_config or {}))
        finally:
            if collecting:
                gc.enable()


class _Run:
    def __init__(
        self,
        strategy: Strategy,
        data: MarketData,
        config: BacktestConfig,
        progress: ProgressCallback | None,
        should_cancel: CancelCheck | None,
    ) -> None:
        self.strategy, self.data, self.config = strategy, data, config
        self.progress, self.should_cancel = progress, should_cancel
        self.sim = ExecutionSimulator(config, data.symbols)
        self.last_target: dict[str, int] = dict.fromkeys(data.symbols, int(Target.FLAT))
        self.index = pd.DatetimeIndex(data.ts, tz="UTC")
        self.rows = {s: _Rows(data.columns[s]) for s in data.symbols}
        self._micros = data.ts.astype("datetime64[us]").astype(np.int64)
        self.wants_fills = type(strategy).on_fill is not Strategy.on_fill

    def stamp(self, i: int) -> datetime:
        """Bar i's start as an aware datetime (cheap enough to call per visited bar)."""
        return EPOCH + timedelta(microseconds=int(self._micros[i]))

    # --- shared steps (both paths call exactly these, in this order) ----------------------
    def work_orders(self, i: int, ts: datetime) -> None:
        sim = self.sim
        present = [s for s in self.data.symbols if self.rows[s].has[i]]
        for symbol in present:
            sim.marks[symbol] = self.rows[symbol].open[i]
        for symbol in present:
            for fill in sim.process(symbol, i, ts, self.rows[symbol].bar(i)):
                self._on_fill(fill, ts)

    def act(self, signals: Sequence[Signal], i: int, ts: datetime, changes: bool = False) -> None:
        """Act on the targets that changed. ``changes``: the caller (the vectorized path) passes
        only checked changes of target, so there is nothing to filter."""
        changed: Sequence[Signal] = signals
        if not changes:
            last_target = self.last_target
            changed = []
            for signal in signals:
                symbol = signal.symbol
                self._check_signal(symbol, i, ts)
                if signal.target != last_target[symbol]:
                    last_target[symbol] = signal.target
                    changed.append(signal)
            if not changed:
                return
        sim = self.sim
        if sim.working:
            for signal in changed:
                sim.cancel_symbol(signal.symbol)
        try:
            orders = self.strategy.risk_check(changed, sim.state(ts))
        except ApplicationError:
            raise
        except Exception as exc:
            raise self._failed("risk_check", ts, exc) from exc
        for order in orders:
            row = self.rows[order.symbol]
            for fill in sim.submit(order, i, ts, float(row.close[i]), float(row.volume[i])):
                if self.wants_fills:
                    self._on_fill(fill, ts)

    def _check_signal(self, symbol: str, i: int, ts: datetime) -> None:
        if symbol not in self.last_target:
            raise StrategyFailed(
                f"strategy {self.strategy.name!r} signalled {symbol!r}, which is not in the run"
            )
        if not self.rows[symbol].has[i]:
            raise StrategyFailed(
                f"strategy {self.strategy.name!r} signalled {symbol} at {ts.isoformat()}, "
                "where it has no bar"
            )

    def _on_fill(self, fill: Fill, ts: datetime) -> None:
        try:
            self.strategy.on_fill(fill)
        except Exception as exc:
            raise self._failed("on_fill", ts, exc) from exc

    def _failed(self, where: str, ts: datetime, exc: Exception) -> StrategyFailed:
        return StrategyFailed(
            f"strategy {self.strategy.name!r} raised in {where} at {ts.isoformat()}: "
            f"{type(exc).__name__}: {exc}"
        )

    def _checkpoint(self, done: float) -> None:
        if self.should_cancel is not None and self.should_cancel():
            raise BacktestCancelled("the run was cancelled")
        if self.progress is not None:
            self.progress(done)

    # --- event-driven path --------------------------------------------------------------
    def events(self) -> EquityCurve:
        data = self.data
        n = len(data)
        stamps: list[datetime] = self.index.to_pydatetime().tolist()
        rows = [(s, self.rows[s].as_lists()) for s in data.symbols]
        closing = type(self.strategy).daily_close is not Strategy.daily_close
        day = data.ts.astype("datetime64[D]")
        session_end: list[bool] = np.append(day[1:] != day[:-1], True).tolist() if closing else []
        step = self._bars_one if len(rows) == 1 and all(rows[0][1].has) else self._bars_many
        every = max(n // 100, CHECKPOINT_BARS)
        for start in range(0, n, every):
            self._checkpoint(start / n)
            step(rows, stamps, start, min(start + every, n), session_end)
        self._checkpoint(1.0)
        return self._curve_from_fills({s: data.close_filled(s) for s in data.symbols})

    def _bars_one(
        self,
        rows: list[tuple[str, _Rows]],
        stamps: list[datetime],
        start: int,
        stop: int,
        session_end: list[bool],
    ) -> None:
        """Bars start..stop of a single symbol without gaps: the hot loop, kept lean."""
        symbol, r = rows[0]
        sim, marks, live = self.sim, self.sim.marks, self.sim.live
        on_bar, generate, daily_close = (
            self.strategy.on_market_data,
            self.strategy.generate_signals,
            self.strategy.daily_close,
        )
        bars = map(
            tuple.__new__,
            repeat(PriceBar),
            zip(
                repeat(symbol),
                stamps[start:stop],
                r.open[start:stop],
                r.high[start:stop],
                r.low[start:stop],
                r.close[start:stop],
                r.volume[start:stop],
            ),
        )
        i = start
        try:
            for i, bar in zip(range(start, stop), bars, strict=True):
                ts = bar[1]
                if sim.working:
                    self.work_orders(i, ts)
                marks[symbol] = bar[5]
                on_bar(bar)
                live.ts = ts
                signals = generate(live)
                if signals:
                    self.act(signals, i, ts)
                if session_end and session_end[i]:
                    daily_close()
        except ApplicationError:
            raise
        except Exception as exc:
            raise self._failed("on_market_data / generate_signals", stamps[i], exc) from exc

    def _bars_many(
        self,
        rows: list[tuple[str, _Rows]],
        stamps: list[datetime],
        start: int,
        stop: int,
        session_end: list[bool],
    ) -> None:
        """Bars start..stop of several symbols (or one with gaps), in the symbols' order."""
        sim, strategy = self.sim, self.strategy
        i = start
        try:
            for i in range(start, stop):
                ts = stamps[i]
                if sim.working:
                    self.work_orders(i, ts)
                for symbol, r in rows:
                    if r.has[i]:
                        close = r.close[i]
                        sim.marks[symbol] = close
                        strategy.on_market_data(
                            PriceBar(symbol, ts, r.open[i], r.high[i], r.low[i], close, r.volume[i])
                        )
                signals = strategy.generate_signals(sim.state(ts))
                if signals:
                    self.act(signals, i, ts)
                if session_end and session_end[i]:
                    strategy.daily_close()
        except ApplicationError:
            raise
        except Exception as exc:
            raise self._failed("on_market_data / generate_signals", stamps[i], exc) from exc

    # --- vectorized path ----------------------------------------------------------------
    def vectorized(self) -> EquityCurve:
        data, sim = self.data, self.sim
        n = len(data)
        try:
            targets = self.strategy.signals_frame(data.columns)
        except ApplicationError:
            raise
        except Exception as exc:
            raise StrategyFailed(
                f"strategy {self.strategy.name!r} raised in signals_frame: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        at, which, wanted = self._target_changes(targets)
        symbols = data.symbols
        # made in bulk, in C: one signal and one timestamp per change
        made = map(
            tuple.__new__,
            repeat(Signal),
            zip(
                [symbols[w] for w in which],
                [TARGETS[w] for w in wanted],
                *(repeat(default) for default in SIGNAL_DEFAULTS),
                strict=False,  # the defaults repeat forever
            ),
        )
        changes: list[Signal] = list(made)
        stamps: list[datetime] = self.index[at].to_pydatetime().tolist()
        self._checkpoint(0.2)
        filled = {s: data.close_filled(s) for s in data.symbols}
        marks = sim.marks
        closes_at_changes = [(s, filled[s][at].tolist()) for s in symbols]
        k, m = 0, len(at)
        i = at[0] if m else n
        while i < n:
            changing = k < m and at[k] == i
            ts = stamps[k] if changing else self.stamp(i)
            if sim.working:
                for symbol in symbols:  # where the event loop's marks stand at bar i's open
                    marks[symbol] = float(filled[symbol][i - 1]) if i else 0.0
                self.work_orders(i, ts)
            if changing:
                for symbol, closes in closes_at_changes:
                    marks[symbol] = closes[k]
            else:
                for symbol in symbols:
                    marks[symbol] = float(filled[symbol][i])
            if changing:
                first = k
                while k < m and at[k] == i:
                    k += 1
                self.act(changes[first:k], i, ts, True)
            following = at[k] if k < m else n
            i = min(i + 1, following) if sim.working else following
        for symbol in symbols:  # value what is still open at the last bar, as events do
            sim.marks[symbol] = float(filled[symbol][-1]) if n else 0.0
        curve = self._curve_from_fills(filled)
        self._checkpoint(1.0)
        return curve

    def _target_changes(
        self, targets: Mapping[str, FloatArray]
    ) -> tuple[list[int], list[int], list[float]]:
        """Bars where a symbol's target changes: (bar, symbol number, target), in bar order
        and, within a bar, in the symbols' order (as the event loop meets them)."""
        n = len(self.data)
        bars, owners, values = [], [], []
        for number, symbol in enumerate(self.data.symbols):
            series = np.asarray(targets.get(symbol, np.full(n, np.nan)), dtype=np.float64)
            if series.shape != (n,):
                raise StrategyFailed(
                    f"strategy {self.strategy.name!r}: signals_frame gave {series.shape} values "
                    f"for {symbol}, expected ({n},)"
                )
            at = np.flatnonzero(~np.isnan(series))
            wanted = series[at]
            if not np.isin(wanted, (-1.0, 0.0, 1.0)).all():
                raise StrategyFailed(
                    f"strategy {self.strategy.name!r}: targets must be -1, 0, 1 or NaN ({symbol})"
                )
            moved = wanted != np.concatenate(([0.0], wanted[:-1]))
            at, wanted = at[moved], wanted[moved]
            missing = at[~np.asarray(self.rows[symbol].has)[at]]
            if len(missing):
                raise StrategyFailed(
                    f"strategy {self.strategy.name!r} signalled {symbol} at "
                    f"{self.index[int(missing[0])].isoformat()}, where it has no bar"
                )
            bars.append(at)
            owners.append(np.full(len(at), number))
            values.append(wanted)
        all_bars, all_owners = np.concatenate(bars), np.concatenate(owners)
        order = np.lexsort((all_owners, all_bars))
        return (
            all_bars[order].tolist(),
            all_owners[order].tolist(),
            np.concatenate(values)[order].tolist(),
        )

    def _curve_from_fills(self, filled: Mapping[str, FloatArray]) -> EquityCurve:
        """Cash and positions after each bar's last fill, carried forward, valued at the
        carried-forward closes: the same sums, in the same order, as the account makes."""
        n, events = len(self.data), self.sim.events
        initial = float(self.config.initial_capital)
        cash = _carry([e.bar for e in events], [e.cash_after for e in events], n, initial)
        equity, gross = cash.copy(), np.zeros(n)
        for symbol in self.data.symbols:
            mine = [e for e in events if e.fill.symbol == symbol]
            if not mine:
                continue
            held = _carry([e.bar for e in mine], [e.position_after for e in mine], n, 0.0)
            value = held * filled[symbol]
            equity = equity + value
            gross = gross + np.abs(value)
        return EquityCurve(ts=self.data.ts, equity=equity, cash=cash, gross_exposure=gross)

    # --- result -------------------------------------------------------------------------
    def result(
        self, curve: EquityCurve, mode: EngineMode, strategy_config: dict[str, Any]
    ) -> BacktestResult:
        sim, config = self.sim, self.config
        trades = [
            Trade(
                symbol=t.symbol,
                side="long" if t.direction > 0 else "short",
                quantity=quantity(t.quantity),
                entry_time=t.entry_ts,
                entry_price=price(t.entry_price),
                exit_time=t.exit_ts,
                exit_price=price(t.exit_price),
                commission=money(t.commission),
                pnl=money(t.pnl),
                bars_held=t.bars_held,
            )
            for t in sim.closed
        ]
        events = list(sim.events)
        fills = LazyRecords(
            lambda: [
                FillRecord(
                    symbol=e.fill.symbol,
                    side=e.fill.side.value,
                    quantity=quantity(e.fill.quantity),
                    price=price(e.fill.price),
                    commission=money(e.fill.commission),
                    ts=e.fill.ts,
                    intent=e.fill.intent.value,
                    order_id=e.fill.order_id,
                )
                for e in events
            ]
        )
        positions = []
        for symbol, trade in sim.open_trades.items():
            held, last = sim.positions[symbol], sim.marks[symbol]
            entry = trade.entry_value / trade.entry_qty
            positions.append(
                OpenPosition(
                    symbol=symbol,
                    side="long" if held > 0 else "short",
                    quantity=quantity(abs(held)),
                    entry_time=trade.entry_ts,
                    entry_price=price(entry),
                    last_price=price(last),
                    market_value=money(held * last),
                    unrealized_pnl=money((last - entry) * held - trade.commission),
                )
            )
        metrics = compute_metrics(
            equity=curve,
            trades=trades,
            initial_capital=config.initial_capital,
            periods_per_year=periods_per_year(config.timeframe),
            traded_notional=sim.traded_notional,
        )
        stamps = self.index
        return BacktestResult(
            strategy_id=str(strategy_config.get("name") or self.strategy.name),
            config=config,
            strategy_config=strategy_config,
            equity_curve=curve,
            trades=trades,
            fills=fills,
            open_positions=positions,
            metrics=metrics,
            start_time=self.stamp(0) if len(stamps) else None,
            end_time=self.stamp(len(stamps) - 1) if len(stamps) else None,
            metadata={
                "engine_mode": mode.value,
                "strategy_class": self.strategy.name,
                "interface_version": self.strategy.interface_version,
                "symbols": list(self.data.symbols),
                "bars": len(self.data),
                "unfilled_orders": len(sim.working),
                "rejections": [
                    {"ts": stamps[r.bar].isoformat(), "symbol": r.symbol, "reason": r.reason}
                    for r in sim.rejections[:100]
                ],
                "rejection_count": len(sim.rejections),
            },
            closes={s: self.data.columns[s]["close"] for s in self.data.symbols},
        )


def _carry(at: list[int], values: list[float], n: int, before: float) -> FloatArray:
    """Values set at bars ``at`` (the last one wins on a bar) carried forward over ``n`` bars;
    ``before`` until the first one."""
    if not at:
        return np.full(n, before)
    points = np.array(at)
    last_of_bar = np.append(points[1:] != points[:-1], True)
    starts = points[last_of_bar]
    levels = np.concatenate(([before], np.array(values)[last_of_bar]))
    runs = np.diff(np.concatenate(([0], starts, [n])))
    result: FloatArray = np.repeat(levels, runs)
    return result


class _Rows:
    """One symbol's columns. The event loop reads Python lists (``as_lists``), which are far
    cheaper per bar than NumPy scalars; the vectorized path reads the arrays at few bars."""

    def __init__(self, columns: Mapping[str, FloatArray]) -> None:
        self.columns = columns
        self.open, self.high, self.low, self.close, self.volume = (
            columns[name] for name in COLUMNS
        )
        self.has: Any = ~np.isnan(columns["close"])

    def as_lists(self) -> _Rows:
        self.open, self.high, self.low, self.close, self.volume = (
            self.columns[name].tolist() for name in COLUMNS
        )
        self.has = (~np.isnan(self.columns["close"])).tolist()
        return self

    def bar(self, i: int) -> tuple[float, float, float, float, float]:
        return (
            float(self.open[i]),
            float(self.high[i]),
            float(self.low[i]),
            float(self.close[i]),
            float(self.volume[i]),
        )

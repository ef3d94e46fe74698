"""The trading loop: latest bars → strategy → signals → risk gateway → orders (spec: strategy
execution flow). Celery beat calls ``trading_tick_all`` every minute.

The strategy is the same class the backtests run. Each tick rebuilds it and replays the last
``WARMUP_BARS`` bars of its symbols (the process keeps no strategy state between ticks, so a
restarted worker picks up exactly where the last one stood), calling ``daily_close`` after each
session the exchange calendar says has closed. Like the backtest engine, it acts only on
*changes* of target, and only on those made by bars it has not acted on before; sizing uses
the backtest's ``entry_quantity`` at the last close, capped at what the order-level risk
limits allow.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog
from django.db import transaction

from marketdata.models import Bar
from monitoring.services import alert_raise_safely
from quant.backtest.simulator import entry_quantity
from quant.calendar import MarketCalendar
from quant.clock import Clock, SystemClock
from quant.errors import GateClosedError
from quant.risk.state import TradingLevel
from quant.strategies.base import (
    OrderIntent,
    PortfolioSnapshot,
    PositionState,
    PriceBar,
    Signal,
    Target,
)
from research.models import Strategy, StrategyMode
from trading.brokers import broker_for_mode
from trading.brokers.base import BrokerClient
from trading.models import AccountSnapshot, Position, StrategyRuntime
from trading.ports import risk
from trading.services.reconcile import reconcile, reconciled_in_process
from trading.services.submit import open_orders, order_submit

log = structlog.get_logger(__name__)

WARMUP_BARS = 300
TRADING_MODES = (StrategyMode.PAPER, StrategyMode.LIVE)


@dataclass
class TickResult:
    strategy: str
    skipped: str = ""
    code: str = ""  # why it was skipped, as an error code (gate_closed, kill_switch...)
    new_bars: int = 0
    signals: list[str] = field(default_factory=list)
    orders: list[str] = field(default_factory=list)


def _bars(symbols: tuple[str, ...], timeframe: str, now: datetime) -> list[PriceBar]:
    rows: list[PriceBar] = []
    for symbol in symbols:
        recent = (
            Bar.objects.filter(instrument__symbol=symbol, timeframe=timeframe, ts__lte=now)
            .order_by("-ts")
            .values_list("ts", "open", "high", "low", "close", "volume")[:WARMUP_BARS]
        )
        rows.extend(
            PriceBar(symbol, ts, float(o), float(h), float(lo), float(c), float(v))
            for ts, o, h, lo, c, v in recent
        )
    if timeframe == "1Day":  # a daily bar is final only once its session has closed
        calendar = MarketCalendar()
        rows = [
            bar
            for bar in rows
            if not calendar.is_session(bar.ts.date())
            or calendar.session_close(bar.ts.date()) <= now
        ]
    rows.sort(key=lambda bar: (bar.ts, bar.symbol))
    return rows


def _portfolio(strategy: Strategy, mode: str, now: datetime) -> PortfolioSnapshot:
    account = AccountSnapshot.objects.filter(mode=mode).order_by("-ts").first()
    positions = {
        p.symbol: PositionState(p.symbol, float(p.quantity), float(p.avg_price))
        for p in Position.objects.filter(strategy=strategy, mode=mode).exclude(quantity=0)
    }
    cash = float(account.cash) if account else 0.0
    equity = float(account.equity) if account else 0.0
    return PortfolioSnapshot(now, cash, equity, positions)


def strategy_tick(
    *,
    strategy: Strategy,
    broker: BrokerClient,
    clock: Clock | None = None,
    mode: str | None = None,
) -> TickResult:
    """One pass of the loop for one strategy in ``mode`` (default: its own mode).

    Its trading state decides first (``risk.gateway.trading_state``): closed gate or kill
    switch, no tick; safe mode or a pause, exits only."""
    clock = clock or SystemClock()
    now = clock.now()
    mode = mode or strategy.mode
    result = TickResult(strategy.name)
    state = risk().trading_state(strategy_id=strategy.pk, mode=mode, now=now)
    if state.halt is not None:
        result.skipped, result.code = state.halt.reason, state.halt.check
        return result
    if not reconciled_in_process(mode):  # sizing reads the account: bring it up to date first
        reconcile(mode=mode, broker=broker, clock=clock)
    runtime, _ = StrategyRuntime.objects.get_or_create(strategy=strategy, mode=mode)
    strategy_marks_update(strategy=strategy, mode=mode, now=now)
    assert strategy.current_version is not None
    config = strategy.current_version.as_config()
    bars = _bars(config.symbols, config.timeframe, now)
    if not bars:
        result.skipped = "no bars"
        return result
    latest = bars[-1].ts
    if runtime.last_bar_ts is not None and latest <= runtime.last_bar_ts:
        result.skipped = "no new bar"
        return result
    instance = config.build()
    portfolio = _portfolio(strategy, mode, now)
    changes, result.new_bars, closed = _replay(
        instance, bars, portfolio, runtime.last_bar_ts, now, config.timeframe
    )
    result.signals = [f"{s.symbol}:{Target(s.target).name}" for s in changes]
    busy = {o.symbol for o in open_orders(mode=mode, strategy_id=strategy.pk)}
    requests = [r for r in instance.risk_check(changes, portfolio) if r.symbol not in busy]
    closes = {bar.symbol: bar.close for bar in bars}
    for request in requests:
        if request.intent is not OrderIntent.EXIT and state.level is TradingLevel.REDUCING:
            result.orders.append(f"{request.symbol}: entry skipped ({state.describe()})")
            continue
        quantity = _quantity(request, portfolio, closes[request.symbol], strategy, mode, now)
        if quantity <= 0:
            result.orders.append(f"{request.symbol}: size 0, skipped")
            continue
        try:
            order = order_submit(
                strategy=strategy,
                mode=mode,
                broker=broker,
                symbol=request.symbol,
                side=request.side.value,
                quantity=quantity,
                order_type=request.order_type.value,
                limit_price=_decimal(request.limit_price),
                stop_price=_decimal(request.stop_price),
                stop_distance=_stop_distance(request, closes[request.symbol], instance),
                reason=request.reason or f"{request.intent.value} on target change",
                clock=clock,
            )
        except GateClosedError as refused:  # demoted while this tick ran
            result.skipped, result.code = refused.message, refused.code
            return result
        text = f"{order.side} {order.quantity} {order.symbol}: {order.status}"
        result.orders.append(f"{text} ({order.reject_reason})" if order.reject_reason else text)
    _runtime_update(runtime, latest=latest, now=now, closed=closed, strategy=strategy)
    log.info(
        "trading.tick",
        strategy=strategy.name,
        mode=mode,
        signals=result.signals,
        orders=result.orders,
    )
    return result


def _replay(
    instance: Any,
    bars: list[PriceBar],
    portfolio: PortfolioSnapshot,
    acted_until: datetime | None,
    now: datetime,
    timeframe: str,
) -> tuple[list[Signal], int, Any]:
    """Feed the bars in time order; return the target changes made by unseen bars."""
    calendar = MarketCalendar()
    groups = [list(g) for _, g in itertools.groupby(bars, key=lambda bar: bar.ts)]
    if acted_until is None:
        acted_until = (
            groups[-2][0].ts if len(groups) > 1 else None
        )  # first tick: act on the last bar
    last_target: dict[str, int] = {}
    changes: dict[str, Signal] = {}
    new_bars = 0
    closed_session = None
    for index, group in enumerate(groups):
        for bar in group:
            instance.on_market_data(bar)
        fresh = acted_until is None or group[0].ts > acted_until
        new_bars += len(group) if fresh else 0
        for signal in instance.generate_signals(portfolio):
            if signal.target != last_target.get(signal.symbol, Target.FLAT):
                last_target[signal.symbol] = signal.target
                if fresh:
                    changes[signal.symbol] = signal
        day = group[0].ts.date()
        next_day = groups[index + 1][0].ts.date() if index + 1 < len(groups) else None
        if next_day != day and (timeframe == "1Day" or calendar.session_close(day) <= now):
            instance.daily_close()
            closed_session = day
    return list(changes.values()), new_bars, closed_session


def _quantity(
    request: Any,
    portfolio: PortfolioSnapshot,
    close: float,
    strategy: Strategy,
    mode: str,
    now: datetime,
) -> Decimal:
    if request.intent is OrderIntent.EXIT:
        return abs(Decimal(str(portfolio.quantity(request.symbol))))
    wanted = Decimal(
        str(entry_quantity(request, close, lambda: portfolio.equity, portfolio.cash, 1.0))
    )
    return min(wanted, _risk_cap(strategy, mode, request, close, now)).to_integral_value(
        rounding="ROUND_FLOOR"
    )


def _risk_cap(strategy: Strategy, mode: str, request: Any, close: float, now: datetime) -> Decimal:
    """The largest size the order-level limits allow (the gateway checks again anyway)."""
    return risk().entry_cap(
        strategy=strategy,
        mode=mode,
        symbol=request.symbol,
        limit_price=_decimal(request.limit_price),
        fallback_price=Decimal(str(close)),
        stop_distance=_decimal(request.stop_distance),
        now=now,
    )


def _stop_distance(request: Any, close: float, instance: Any) -> Decimal | None:
    if request.stop_distance is not None:
        return _decimal(request.stop_distance)
    if request.intent is OrderIntent.ENTRY:
        return Decimal(str(close * instance.sizing.stop_pct / 100.0)).quantize(Decimal("0.0001"))
    return None


def _decimal(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def strategy_marks_update(*, strategy: Strategy, mode: str, now: datetime) -> None:
    """Keep the strategy's high water mark and session-opening equity current: the gateway's
    strategy drawdown and daily loss limits are measured from them."""
    account = AccountSnapshot.objects.filter(mode=mode).order_by("-ts").first()
    if account is None:
        return
    equity = risk().strategy_equity(
        strategy=strategy, mode=mode, account_equity=account.equity, now=now
    )
    with transaction.atomic():
        runtime = StrategyRuntime.objects.select_for_update().get(strategy=strategy, mode=mode)
        if runtime.session_date != now.date() or runtime.session_start_equity is None:
            runtime.session_date, runtime.session_start_equity = now.date(), equity
        runtime.high_water_mark = max(runtime.high_water_mark or equity, equity)
        runtime.save(update_fields=["session_date", "session_start_equity", "high_water_mark"])


def _runtime_update(
    runtime: StrategyRuntime, *, latest: datetime, now: datetime, closed: Any, strategy: Strategy
) -> None:
    with transaction.atomic():
        runtime = StrategyRuntime.objects.select_for_update().get(pk=runtime.pk)
        runtime.last_bar_ts = latest
        runtime.last_tick_at = now
        runtime.last_error = ""
        if closed is not None:
            runtime.last_daily_close = closed
        runtime.save()


def trading_tick_all(*, clock: Clock | None = None) -> list[TickResult]:
    """Beat's entry: tick every active strategy in paper or live mode."""
    results = []
    strategies = Strategy.objects.filter(mode__in=TRADING_MODES, is_active=True).select_related(
        "current_version"
    )
    for strategy in strategies:
        try:
            results.append(
                strategy_tick(strategy=strategy, broker=broker_for_mode(strategy.mode), clock=clock)
            )
        except Exception as error:  # one strategy's failure must not stop the others
            log.exception("trading.tick_failed", strategy=strategy.name)
            StrategyRuntime.objects.update_or_create(
                strategy=strategy, mode=strategy.mode, defaults={"last_error": repr(error)[:2000]}
            )
            alert_raise_safely(
                severity="warning",
                source="trading.loop",
                message=f"Strategy {strategy.name} tick failed: {type(error).__name__}: {error}",
                key=f"trading.tick_failed.{strategy.pk}",
            )
            results.append(TickResult(strategy.name, skipped=f"error: {error}"))
    return results

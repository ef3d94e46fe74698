"""The risk gateway's Django shell: load what ``quant.risk.rules.check_order`` needs, and ask it.

Every order passes here, inside the transaction that marks it approved (``order_place``),
with a shared lock on the kill-switch rows: an activation that commits first is seen; one
that starts later waits for this transaction. Reads only the database (no broker call):
three statements after the kill switch's, prepared once per connection (``risk.reads``),
so the check stays in the low milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from marketdata.prices import last_prices
from quant.clock import Clock
from quant.risk.limits import HUNDRED, effective_limits
from quant.risk.rules import check_order
from quant.risk.state import PAUSE_CHECKS, TradingState
from quant.risk.values import (
    KillSwitchView,
    MarketView,
    OrderProposal,
    PortfolioView,
    RiskVerdict,
    StrategyView,
)
from risk.reads import (
    Account,
    Book,
    Daily,
    GatewayReads,
    account_read,
    daily_bars,
    gateway_reads,
    positions_of,
    risk_overrides,
)
from risk.selectors import kill_switch_blocking
from trading.models import Order, OrderSource, Position, StrategyRuntime
from trading.services.pauses import pause_of, strategy_pause

__all__ = [
    "kill_switch_view",
    "last_prices",
    "market_view",
    "order_risk_check",
    "portfolio_view",
    "strategy_view",
    "trading_state",
]

ZERO = Decimal("0")
FLATTENING = (OrderSource.KILL_SWITCH, OrderSource.OPERATOR)
_UNSET: Any = object()


def market_view(
    symbol: str,
    now: datetime,
    *,
    prices: Mapping[str, Decimal] | None = None,
    daily: Daily | None = None,
) -> MarketView:
    """The last price and the averages of the last ``ADV_SESSIONS`` daily bars up to ``now``
    (``prices`` and ``daily``, the symbol's bars, are read when not given)."""
    last = (last_prices([symbol]) if prices is None else prices).get(symbol)
    if daily is None:
        daily = daily_bars(symbol, now)
    volume = sum((v for v, _ in daily), ZERO) / len(daily) if daily else None
    dollars = sum((v * c for v, c in daily), ZERO) / len(daily) if daily else None
    return MarketView(
        last_price=last,
        average_daily_volume=volume,
        average_daily_dollar_volume=dollars,
    )


def portfolio_view(
    mode: str,
    symbol: str,
    now: datetime,
    *,
    positions: Sequence[Position] | None = None,
    prices: Mapping[str, Decimal] | None = None,
    account: Account | None = _UNSET,
) -> PortfolioView | None:
    """The account as the portfolio limits see it (None before the first snapshot).
    ``positions`` (every position of ``mode``), ``prices`` (covering them) and ``account``
    are loaded when not given."""
    if account is _UNSET:
        account = account_read(mode, now)
    if account is None:
        return None
    if positions is None:
        positions = positions_of(mode)
    summed: dict[str, Decimal] = {}
    for p in positions:
        summed[p.symbol] = summed.get(p.symbol, ZERO) + p.quantity
    held = {s: q for s, q in summed.items() if q}
    if prices is None:
        prices = last_prices(held)
    deployed = sum((abs(q) * prices.get(s, ZERO) for s, q in held.items()), ZERO)
    return PortfolioView(
        equity=account.equity,
        opening_equity=account.opening if account.opening is not None else account.equity,
        high_water_mark=max(account.peak or account.equity, account.equity),
        cash=account.cash,
        deployed=deployed,
        open_positions=len(held),
        holds_symbol=symbol in held,
    )


def strategy_view(
    strategy_id: int,
    mode: str,
    equity: Decimal,
    allocation_pct: Decimal,
    now: datetime,
    *,
    positions: Sequence[Position] | None = None,
    prices: Mapping[str, Decimal] | None = None,
    runtime: StrategyRuntime | None = _UNSET,
) -> StrategyView:
    """The strategy's book as its limits see it. ``positions`` (of ``mode``; other strategies'
    are skipped), ``prices`` and ``runtime`` are loaded when not given."""
    allocation = equity * allocation_pct / HUNDRED
    if positions is None:
        positions = list(Position.objects.filter(strategy_id=strategy_id, mode=mode))
    positions = [p for p in positions if p.strategy_id == strategy_id]
    if prices is None:
        prices = last_prices(p.symbol for p in positions if p.quantity)
    unrealized = deployed = ZERO
    for p in positions:
        if p.quantity and p.symbol in prices:
            unrealized += (prices[p.symbol] - p.avg_price) * p.quantity
            deployed += abs(p.quantity) * prices[p.symbol]
    pnl = sum((p.realized_pnl for p in positions), ZERO) + unrealized
    strategy_equity = allocation + pnl
    if runtime is _UNSET:
        runtime = StrategyRuntime.objects.filter(strategy_id=strategy_id, mode=mode).first()
    peak = strategy_equity
    session_pnl = ZERO
    if runtime is not None:
        if runtime.high_water_mark is not None:
            peak = max(peak, runtime.high_water_mark)
        if runtime.session_date == now.date() and runtime.session_start_equity is not None:
            session_pnl = strategy_equity - runtime.session_start_equity
    return StrategyView(
        allocation=allocation,
        equity=strategy_equity,
        high_water_mark=peak,
        session_pnl=session_pnl,
        deployed=deployed,
    )


def kill_switch_view(strategy_id: int, *, lock: bool) -> KillSwitchView:
    state = kill_switch_blocking(strategy_id=strategy_id, lock=lock)
    if state is None:
        return KillSwitchView()
    if state.scope == "global":
        return KillSwitchView(global_active=True, global_reason=state.reason)
    return KillSwitchView(strategy_active=True, strategy_reason=state.reason)


def state_from_reads(
    reads: GatewayReads, strategy_id: int, order_mode: str, now: datetime
) -> TradingState:
    """The trading state in ``reads`` (its kill switch already read)."""
    name, strategy_mode = reads.strategy or (f"#{strategy_id}", "research")
    return TradingState(
        strategy_id=strategy_id,
        strategy_name=name,
        strategy_mode=strategy_mode,
        order_mode=order_mode,
        kill_switch=reads.kill_switch or KillSwitchView(),
        safe_mode_reason=reads.safe_mode_reason,
        pause=pause_of(reads.runtime, now),
    )


def trading_state(*, strategy_id: int, mode: str, now: datetime) -> TradingState:
    """May the strategy act in ``mode`` now? One statement, no lock: for the order service
    before it stores an order, the trading loop before a tick, pages and the API. The gateway
    decides again, locked, inside the order's transaction."""
    reads = GatewayReads.read(strategy_id, mode, now)
    if reads.kill_switch is None:  # the global row went missing: recreated, read again
        reads.kill_switch = kill_switch_view(strategy_id, lock=False)
    return state_from_reads(reads, strategy_id, mode, now)


def order_risk_check(order: Order, clock: Clock) -> RiskVerdict:
    """The gateway for one PENDING order (call inside the transaction that approves it).

    Reads, sent together after the kill-switch lock (shared): ``GatewayReads`` (kill switch,
    safe mode, runtime, strategy, version, account, limits) and the book (positions of the
    mode, their last prices, the symbol's daily bars), each one hand-written statement; limits
    are never cached. Should the global kill-switch row be missing, it is recreated and read
    again. First the trading state (mode gate, kill switch, safe mode, pause), then the
    limits; a breached drawdown or daily-loss limit also stores the strategy's pause.
    """
    now = clock.now()
    reads, book = gateway_reads(order.strategy_id, order.mode, order.symbol, now)
    if reads.kill_switch is None:
        reads.kill_switch = kill_switch_view(order.strategy_id, lock=True)
    state = state_from_reads(reads, order.strategy_id, order.mode, now)
    flattening = order.source in FLATTENING
    refused = state.refusal(opening=order.opening, flattening=flattening)
    if refused is not None:
        return RiskVerdict(False, refused.reason, refused.check)
    switch = KillSwitchView() if flattening else state.kill_switch
    verdict = _verdict_from_rules(order, reads, book, switch=switch, now=now)
    if verdict.check in PAUSE_CHECKS:
        strategy_pause(
            strategy_id=order.strategy_id,
            mode=order.mode,
            check=verdict.check,
            reason=verdict.reason,
            now=now,
        )
    return verdict


def _verdict_from_rules(
    order: Order, reads: GatewayReads, book: Book, *, switch: KillSwitchView, now: datetime
) -> RiskVerdict:
    """Ask ``check_order`` (the book: every position of the mode and their prices, read
    once)."""
    positions, prices = book.positions, book.prices
    market = market_view(order.symbol, now, prices=prices, daily=book.daily)
    reference = order.limit_price or market.last_price
    if reference is None or reference <= 0:
        if not order.opening and not (switch.global_active or switch.strategy_active):
            reference = order.avg_fill_price or Decimal("1")
        else:
            return RiskVerdict(
                False, f"No last price for {order.symbol}: cannot check the order", "market_data"
            )
    portfolio = portfolio_view(
        order.mode, order.symbol, now, positions=positions, prices=prices, account=reads.account
    )
    if portfolio is None:
        return RiskVerdict(
            False,
            f"No account snapshot for {order.mode} trading yet: reconcile with the broker first",
            "account",
            reference,
        )
    overrides = risk_overrides(*reads.version) if reads.version is not None else None
    limits, strategy_limits = effective_limits(reads.limits, reads.strategy_limits, overrides)
    decision = check_order(
        OrderProposal(
            strategy_id=order.strategy_id,
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            reference_price=reference,
            stop_distance=order.stop_distance,
            opening=order.opening,
        ),
        portfolio=portfolio,
        strategy=strategy_view(
            order.strategy_id,
            order.mode,
            portfolio.equity,
            strategy_limits.max_allocation_pct,
            now,
            positions=positions,
            prices=prices,
            runtime=reads.runtime,
        ),
        market=market,
        limits=limits,
        strategy_limits=strategy_limits,
        kill_switch=switch,
    )
    return RiskVerdict(decision.approved, decision.reason, decision.check, reference)

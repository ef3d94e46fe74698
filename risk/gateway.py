"""The risk gateway's Django shell: load what ``risk.rules.check_order`` needs, and ask it.

Every order passes here, inside the transaction that marks it approved (``order_place``),
with a shared lock on the kill-switch rows: an activation that commits first is seen; one
that starts later waits for this transaction. Reads only the database (no broker call), so
the check stays in the low milliseconds.
"""

from __future__ import annotations

from datetime import datetime, time
from decimal import Decimal

from django.db.models import Max, Sum

from marketdata.models import Bar
from quant.core.clock import Clock
from quant.models import Strategy
from risk.limits import HUNDRED
from risk.rules import check_order
from risk.values import (
    KillSwitchView,
    MarketView,
    OrderProposal,
    PortfolioView,
    StrategyView,
)
from trading.models import AccountSnapshot, Order, OrderSource, Position, SafeMode, StrategyRuntime
from trading.services.orders import RiskVerdict

ADV_SESSIONS = 20
ZERO = Decimal("0")
FLATTENING = (OrderSource.KILL_SWITCH, OrderSource.OPERATOR)


def last_prices(symbols: list[str]) -> dict[str, Decimal]:
    """The newest close per symbol over every timeframe (one query)."""
    if not symbols:
        return {}
    newest = (
        Bar.objects.filter(instrument__symbol__in=symbols)
        .values("instrument__symbol")
        .annotate(ts=Max("ts"))
    )
    prices: dict[str, Decimal] = {}
    for row in newest:
        bar = (
            Bar.objects.filter(instrument__symbol=row["instrument__symbol"], ts=row["ts"])
            .order_by("timeframe")
            .values_list("close", flat=True)
            .first()
        )
        if bar is not None:
            prices[row["instrument__symbol"]] = bar
    return prices


def market_view(symbol: str, now: datetime) -> MarketView:
    last = last_prices([symbol]).get(symbol)
    daily = list(
        Bar.objects.filter(instrument__symbol=symbol, timeframe="1Day", ts__lte=now)
        .order_by("-ts")
        .values_list("volume", "close")[:ADV_SESSIONS]
    )
    volume = sum((v for v, _ in daily), ZERO) / len(daily) if daily else None
    dollars = sum((v * c for v, c in daily), ZERO) / len(daily) if daily else None
    return MarketView(
        last_price=last,
        average_daily_volume=volume,
        average_daily_dollar_volume=dollars,
    )


def portfolio_view(mode: str, symbol: str, now: datetime) -> PortfolioView | None:
    latest = AccountSnapshot.objects.filter(mode=mode).order_by("-ts").first()
    if latest is None:
        return None
    session_start = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
    opening = (
        AccountSnapshot.objects.filter(mode=mode, ts__gte=session_start)
        .order_by("ts")
        .values_list("equity", flat=True)
        .first()
    )
    peak = AccountSnapshot.objects.filter(mode=mode).aggregate(peak=Max("equity"))["peak"]
    held = {
        row["symbol"]: row["qty"]
        for row in Position.objects.filter(mode=mode).values("symbol").annotate(qty=Sum("quantity"))
        if row["qty"]
    }
    prices = last_prices(list(held))
    deployed = sum((abs(q) * prices.get(s, ZERO) for s, q in held.items()), ZERO)
    return PortfolioView(
        equity=latest.equity,
        opening_equity=opening if opening is not None else latest.equity,
        high_water_mark=max(peak or latest.equity, latest.equity),
        cash=latest.cash,
        deployed=deployed,
        open_positions=len(held),
        holds_symbol=symbol in held,
    )


def strategy_view(
    strategy: Strategy, mode: str, equity: Decimal, allocation_pct: Decimal, now: datetime
) -> StrategyView:
    allocation = equity * allocation_pct / HUNDRED
    positions = list(Position.objects.filter(strategy=strategy, mode=mode))
    prices = last_prices([p.symbol for p in positions if p.quantity])
    unrealized = deployed = ZERO
    for p in positions:
        if p.quantity and p.symbol in prices:
            unrealized += (prices[p.symbol] - p.avg_price) * p.quantity
            deployed += abs(p.quantity) * prices[p.symbol]
    pnl = sum((p.realized_pnl for p in positions), ZERO) + unrealized
    strategy_equity = allocation + pnl
    runtime = StrategyRuntime.objects.filter(strategy=strategy, mode=mode).first()
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
    from risk.selectors import kill_switch_blocking

    state = kill_switch_blocking(strategy_id=strategy_id, lock=lock)
    if state is None:
        return KillSwitchView()
    if state.scope == "global":
        return KillSwitchView(global_active=True, global_reason=state.reason)
    return KillSwitchView(strategy_active=True, strategy_reason=state.reason)


def order_risk_check(order: Order, clock: Clock) -> RiskVerdict:
    """The gateway for one PENDING order (call inside the transaction that approves it)."""
    now = clock.now()
    switch = kill_switch_view(order.strategy_id, lock=True)
    if order.source in FLATTENING and not order.opening:
        switch = KillSwitchView()  # the kill switch's own flattening must get through
    if switch.global_active or switch.strategy_active:
        return _verdict_from_rules(order, switch=switch, now=now)
    if order.opening:
        safe = SafeMode.objects.filter(mode=order.mode, active=True).first()
        if safe is not None:
            return RiskVerdict(
                False,
                f"Safe mode: no new entries until reconciliation matches ({safe.reason})",
                "safe_mode",
            )
        runtime = StrategyRuntime.objects.filter(
            strategy_id=order.strategy_id, mode=order.mode
        ).first()
        if runtime and runtime.paused_until and runtime.paused_until > now:
            return RiskVerdict(
                False, f"Strategy paused: {runtime.paused_reason}", "strategy_paused"
            )
    return _verdict_from_rules(order, switch=switch, now=now)


def _verdict_from_rules(order: Order, *, switch: KillSwitchView, now: datetime) -> RiskVerdict:
    from risk.limits import effective_limits
    from risk.selectors import limits_current, strategy_limits_for

    strategy = Strategy.objects.select_related("current_version").get(pk=order.strategy_id)
    market = market_view(order.symbol, now)
    reference = order.limit_price or market.last_price
    if reference is None or reference <= 0:
        if not order.opening and not (switch.global_active or switch.strategy_active):
            reference = order.avg_fill_price or Decimal("1")
        else:
            return RiskVerdict(
                False, f"No last price for {order.symbol}: cannot check the order", "market_data"
            )
    portfolio = portfolio_view(order.mode, order.symbol, now)
    if portfolio is None:
        return RiskVerdict(
            False,
            f"No account snapshot for {order.mode} trading yet: reconcile with the broker first",
            "account",
            reference,
        )
    overrides = None
    if strategy.current_version is not None:
        overrides = strategy.current_version.as_config().risk
    limits, strategy_limits = effective_limits(
        limits_current(), strategy_limits_for(strategy=strategy), overrides
    )
    decision = check_order(
        OrderProposal(
            strategy_id=strategy.pk,
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            reference_price=reference,
            stop_distance=order.stop_distance,
            opening=order.opening,
        ),
        portfolio=portfolio,
        strategy=strategy_view(
            strategy, order.mode, portfolio.equity, strategy_limits.max_allocation_pct, now
        ),
        market=market,
        limits=limits,
        strategy_limits=strategy_limits,
        kill_switch=switch,
    )
    return RiskVerdict(decision.approved, decision.reason, decision.check, reference)

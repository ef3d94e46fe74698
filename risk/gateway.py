"""The risk gateway's Django shell: load what ``risk.rules.check_order`` needs, and ask it.

Every order passes here, inside the transaction that marks it approved (``order_place``),
with a shared lock on the kill-switch rows: an activation that commits first is seen; one
that starts later waits for this transaction. Reads only the database (no broker call), so
the check stays in the low milliseconds.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, time
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Field, Max

from marketdata.domain import Timeframe
from marketdata.models import Bar, Instrument
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
TIMEFRAMES = sorted(t.value for t in Timeframe)  # by name: the tie-break of last_prices
ZERO = Decimal("0")
FLATTENING = (OrderSource.KILL_SWITCH, OrderSource.OPERATOR)


def last_prices(symbols: Iterable[str]) -> dict[str, Decimal]:
    """The newest close per symbol over every timeframe (ties: the first timeframe by name).

    One statement: per instrument, the newest bar of each timeframe, each an index lookup on
    (instrument, timeframe, ts) however many bars are stored. Written as SQL once per symbol
    count (the ORM spent longer composing it than the database spent running it), the values
    read back through the model fields as the ORM would.
    """
    wanted = sorted(set(symbols))
    if not wanted:
        return {}
    params: list[Any] = [tf for tf in TIMEFRAMES for _ in range(2)] + wanted
    with connection.cursor() as cursor:
        cursor.execute(_last_prices_sql(connection.vendor, len(wanted)), params)
        rows = cursor.fetchall()
    ts_field, close_field = _bar_field("ts"), _bar_field("close")
    prices: dict[str, Decimal] = {}
    for symbol, *values in rows:
        candidates = [
            (ts_field.to_python(values[2 * n]), timeframe, values[2 * n + 1])
            for n, timeframe in enumerate(TIMEFRAMES)
            if values[2 * n] is not None
        ]
        if candidates:
            newest = max(ts for ts, _, _ in candidates)
            _, close = min((tf, c) for ts, tf, c in candidates if ts == newest)
            prices[symbol] = _decimal(close, close_field)
    return prices


def _decimal(value: Any, field: Field[Any, Any]) -> Decimal:
    """A price as the ORM reads it: PostgreSQL gives a Decimal; SQLite a float, rounded to the
    column's places as Django's own converter does."""
    if isinstance(value, Decimal):
        return value
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    places = getattr(field, "decimal_places", None)
    return number.quantize(Decimal(1).scaleb(-places)) if places is not None else number


def _bar_field(name: str) -> Field[Any, Any]:
    field = Bar._meta.get_field(name)
    assert isinstance(field, Field)
    return field


@functools.cache
def _last_prices_sql(vendor: str, symbols: int) -> str:
    quote = connection.ops.quote_name
    bar, instrument = quote(Bar._meta.db_table), quote(Instrument._meta.db_table)
    column = {name: quote(_bar_field(name).column or name) for name in ("instrument", "ts")}
    close, timeframe = quote(_bar_field("close").column or "close"), quote("timeframe")
    newest = (
        f"FROM {bar} b WHERE b.{column['instrument']} = i.id AND b.{timeframe} = %s "
        f"ORDER BY b.{column['ts']} DESC LIMIT 1"
    )
    picks = ", ".join(
        f"(SELECT b.{column['ts']} {newest}), (SELECT b.{close} {newest})" for _ in TIMEFRAMES
    )
    placeholders = ", ".join(["%s"] * symbols)
    return f"SELECT i.symbol, {picks} FROM {instrument} i WHERE i.symbol IN ({placeholders})"


def market_view(
    symbol: str, now: datetime, *, prices: Mapping[str, Decimal] | None = None
) -> MarketView:
    last = (last_prices([symbol]) if prices is None else prices).get(symbol)
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


def portfolio_view(
    mode: str,
    symbol: str,
    now: datetime,
    *,
    positions: Sequence[Position] | None = None,
    prices: Mapping[str, Decimal] | None = None,
) -> PortfolioView | None:
    """The account as the portfolio limits see it. ``positions`` (every position of ``mode``)
    and ``prices`` (covering them) are loaded when not given."""
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
    if positions is None:
        positions = list(Position.objects.filter(mode=mode))
    summed: dict[str, Decimal] = {}
    for p in positions:
        summed[p.symbol] = summed.get(p.symbol, ZERO) + p.quantity
    held = {s: q for s, q in summed.items() if q}
    if prices is None:
        prices = last_prices(held)
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


_UNSET: Any = object()


def strategy_view(
    strategy: Strategy,
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
        positions = list(Position.objects.filter(strategy=strategy, mode=mode))
    positions = [p for p in positions if p.strategy_id == strategy.pk]
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
    runtime: StrategyRuntime | None = _UNSET
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
    return _verdict_from_rules(order, switch=switch, now=now, runtime=runtime)


def _verdict_from_rules(
    order: Order,
    *,
    switch: KillSwitchView,
    now: datetime,
    runtime: StrategyRuntime | None = _UNSET,
) -> RiskVerdict:
    """Load the rules' inputs (every position of the mode and their prices once) and ask
    ``check_order``. ``runtime`` is the strategy's, when the caller has read it already."""
    from risk.limits import effective_limits
    from risk.selectors import limits_current, strategy_limits_for

    strategy = Strategy.objects.select_related("current_version").get(pk=order.strategy_id)
    positions = list(Position.objects.filter(mode=order.mode))
    prices = last_prices([order.symbol, *(p.symbol for p in positions if p.quantity)])
    market = market_view(order.symbol, now, prices=prices)
    reference = order.limit_price or market.last_price
    if reference is None or reference <= 0:
        if not order.opening and not (switch.global_active or switch.strategy_active):
            reference = order.avg_fill_price or Decimal("1")
        else:
            return RiskVerdict(
                False, f"No last price for {order.symbol}: cannot check the order", "market_data"
            )
    portfolio = portfolio_view(order.mode, order.symbol, now, positions=positions, prices=prices)
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
            strategy,
            order.mode,
            portfolio.equity,
            strategy_limits.max_allocation_pct,
            now,
            positions=positions,
            prices=prices,
            runtime=runtime,
        ),
        market=market,
        limits=limits,
        strategy_limits=strategy_limits,
        kill_switch=switch,
    )
    return RiskVerdict(decision.approved, decision.reason, decision.check, reference)

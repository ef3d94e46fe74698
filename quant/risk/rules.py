"""The pre-trade risk gateway as a pure function (spec section 6), free of Django.

``check_order`` runs the spec's checks in the spec's order and stops at the first failure:

1. kill switch: global, then the strategy's;
2. order level: max risk per trade, max notional, price deviation, min price, quantity vs ADV;
3. strategy level: allocation, drawdown, daily loss, min liquidity;
4. portfolio level: daily drawdown, total drawdown, capital deployed, open positions.

Closing (risk-reducing) orders: a trader must always be able to reduce risk, so only the kill
switch and the price-deviation check (a fat-finger guard) apply to them. Everything else limits
new risk and applies to opening orders only: the per-trade, notional and ADV caps, the penny
stock filter (a position that fell below $5 must still be sellable), the strategy pauses and
the portfolio halts. Unknown market data is a rejection for an opening order (the check cannot
run), and for a closing order the deviation check is skipped. Kill-switch FLATTEN orders are
issued by the kill-switch response itself and do not pass through here.

Comparisons are exact (cross-multiplied, no rounded percentages): a value equal to its limit
passes. Messages show two decimals; a breaching value that would round onto its limit is
rounded away from it, so a message never reads "2.00% > 2.00%".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, localcontext

from quant.risk.limits import HUNDRED, RiskLimits, StrategyLimits, effective_limits
from quant.risk.values import (
    APPROVED,
    CENT,
    ZERO,
    KillSwitchView,
    MarketView,
    OrderProposal,
    PortfolioView,
    RiskDecision,
    StrategyView,
    money,
    money_over,
    money_under,
    pct,
    pct_over,
    qty,
    ratio_pct,
    shown,
    stop_distance_for,
)

__all__ = [
    "KillSwitchView",
    "MarketView",
    "OrderProposal",
    "PortfolioView",
    "RiskDecision",
    "RiskLimits",
    "StrategyLimits",
    "StrategyView",
    "check_order",
    "effective_limits",
    "max_quantity",
]


@dataclass(frozen=True)
class _Order:
    """Everything one check may look at."""

    proposal: OrderProposal
    portfolio: PortfolioView
    strategy: StrategyView
    market: MarketView
    limits: RiskLimits
    strategy_limits: StrategyLimits
    kill_switch: KillSwitchView

    @property
    def stop_distance(self) -> Decimal:
        return stop_distance_for(
            self.proposal.reference_price, self.proposal.stop_distance, self.limits
        )


def _reject(check: str, reason: str, **details: object) -> RiskDecision:
    return RiskDecision(False, check, reason, {k: str(v) for k, v in details.items()})


# --- the checks, in the spec's order --------------------------------------------------------

Check = Callable[[_Order], RiskDecision | None]


def kill_switch_rejection(ks: KillSwitchView, strategy_id: int | None) -> RiskDecision | None:
    """The kill switch's rejection (global first), or None when neither switch is active."""
    if ks.global_active:
        return _reject(
            "kill_switch", f"Kill switch active (global): {ks.global_reason}", scope="global"
        )
    if ks.strategy_active:
        return _reject(
            "kill_switch",
            f"Kill switch active (strategy): {ks.strategy_reason}",
            scope="strategy",
            strategy_id=strategy_id,
        )
    return None


def _kill_switch(o: _Order) -> RiskDecision | None:
    return kill_switch_rejection(o.kill_switch, o.proposal.strategy_id)


def _max_risk(o: _Order) -> RiskDecision | None:
    if not o.proposal.opening:
        return None
    equity, limit = o.portfolio.equity, o.limits.max_risk_per_trade_pct
    if equity <= 0:
        return _reject(
            "max_risk_per_trade", f"Portfolio equity is not positive ({money(equity)}): no new risk"
        )
    risk = o.proposal.quantity * o.stop_distance
    if risk * HUNDRED > equity * limit:
        value = ratio_pct(risk, equity)
        return _reject(
            "max_risk_per_trade",
            f"Max risk exceeded: {pct_over(value, limit)}",
            value=value,
            limit=limit,
            risk=risk,
            stop_distance=o.stop_distance,
        )
    return None


def _max_notional(o: _Order) -> RiskDecision | None:
    notional, limit = o.proposal.notional, o.limits.max_notional_per_trade
    if o.proposal.opening and notional > limit:
        return _reject(
            "max_notional",
            f"Notional exceeds limit: {money_over(notional, limit)}",
            value=notional,
            limit=limit,
        )
    return None


def _price_deviation(o: _Order) -> RiskDecision | None:
    last, limit = o.market.last_price, o.limits.max_price_deviation_pct
    if last is None or last <= 0:
        if not o.proposal.opening:
            return None  # nothing to compare with; reducing risk is never blocked on it
        return _reject(
            "price_deviation", f"No last price for {o.proposal.symbol}: cannot check the price"
        )
    gap = abs(o.proposal.reference_price - last)
    if gap * HUNDRED > last * limit:
        value = ratio_pct(gap, last)
        return _reject(
            "price_deviation",
            f"Price deviates {pct(shown(value, limit))} from last price {last.quantize(CENT)} (limit {pct(limit)})",
            value=value,
            limit=limit,
            last_price=last,
        )
    return None


def _min_price(o: _Order) -> RiskDecision | None:
    price, limit = o.proposal.reference_price, o.limits.min_price
    if o.proposal.opening and price < limit:
        return _reject(
            "min_price",
            f"Price below minimum: {money_under(price, limit)}",
            value=price,
            limit=limit,
        )
    return None


def _max_adv(o: _Order) -> RiskDecision | None:
    if not o.proposal.opening:
        return None
    adv, limit = o.market.average_daily_volume, o.limits.max_adv_pct
    if adv is None:
        return _reject(
            "max_adv",
            f"No average daily volume for {o.proposal.symbol}: cannot check the quantity",
        )
    quantity = o.proposal.quantity
    if quantity * HUNDRED > adv * limit:
        cap = adv * limit / HUNDRED
        return _reject(
            "max_adv",
            f"Quantity exceeds {pct(limit)} of average daily volume: "
            f"{qty(quantity)} > {qty(cap)} (ADV {qty(adv)})",
            value=quantity,
            limit=cap,
            average_daily_volume=adv,
        )
    return None


def _strategy_allocation(o: _Order) -> RiskDecision | None:
    if not o.proposal.opening:
        return None
    exposure = o.strategy.deployed + o.proposal.notional
    equity, limit = o.portfolio.equity, o.strategy_limits.max_allocation_pct
    if exposure * HUNDRED > equity * limit:
        value = ratio_pct(exposure, equity)
        return _reject(
            "strategy_allocation",
            f"Strategy allocation exceeded: {pct_over(value, limit)} of portfolio equity",
            value=value,
            limit=limit,
        )
    return None


def _strategy_drawdown(o: _Order) -> RiskDecision | None:
    if not o.proposal.opening:
        return None
    s, limit = o.strategy, o.strategy_limits.max_drawdown_pct
    if s.allocation <= 0:
        return _reject("strategy_drawdown", "Strategy has no allocated capital: no new entries")
    drawdown = max(s.high_water_mark - s.equity, ZERO)
    if drawdown * HUNDRED > s.allocation * limit:
        value = ratio_pct(drawdown, s.allocation)
        return _reject(
            "strategy_drawdown",
            f"Strategy drawdown exceeded: {pct_over(value, limit)} of allocation (strategy paused)",
            value=value,
            limit=limit,
        )
    return None


def _strategy_daily_loss(o: _Order) -> RiskDecision | None:
    if not o.proposal.opening:
        return None
    s, limit = o.strategy, o.strategy_limits.max_daily_loss_pct
    loss = max(-s.session_pnl, ZERO)
    if loss * HUNDRED > s.allocation * limit:
        value = ratio_pct(loss, s.allocation)
        return _reject(
            "strategy_daily_loss",
            f"Strategy daily loss exceeded: {pct_over(value, limit)} of allocation "
            "(paused for the session)",
            value=value,
            limit=limit,
        )
    return None


def _min_liquidity(o: _Order) -> RiskDecision | None:
    if not o.proposal.opening:
        return None
    volume, limit = o.market.average_daily_dollar_volume, o.strategy_limits.min_liquidity
    if volume is None:
        return _reject(
            "min_liquidity",
            f"No average daily dollar volume for {o.proposal.symbol}: cannot check liquidity",
        )
    if volume < limit:
        return _reject(
            "min_liquidity",
            f"Liquidity below minimum: {money_under(volume, limit)} daily dollar volume",
            value=volume,
            limit=limit,
        )
    return None


def _daily_drawdown(o: _Order) -> RiskDecision | None:
    p, limit = o.portfolio, o.limits.max_daily_drawdown_pct
    if p.opening_equity <= 0:
        return None  # no session start to measure from (max risk already needs equity > 0)
    drawdown = max(p.opening_equity - p.equity, ZERO)
    if o.proposal.opening and drawdown * HUNDRED > p.opening_equity * limit:
        value = ratio_pct(drawdown, p.opening_equity)
        return _reject(
            "daily_drawdown",
            f"Daily drawdown exceeded: {pct_over(value, limit)} (new entries halted)",
            value=value,
            limit=limit,
        )
    return None


def _total_drawdown(o: _Order) -> RiskDecision | None:
    p, limit = o.portfolio, o.limits.max_total_drawdown_pct
    if p.high_water_mark <= 0:
        return None
    drawdown = max(p.high_water_mark - p.equity, ZERO)
    if o.proposal.opening and drawdown * HUNDRED > p.high_water_mark * limit:
        value = ratio_pct(drawdown, p.high_water_mark)
        return _reject(
            "total_drawdown",
            f"Total drawdown exceeded: {pct_over(value, limit)} (kill switch)",
            value=value,
            limit=limit,
        )
    return None


def _capital_deployed(o: _Order) -> RiskDecision | None:
    p, limit = o.portfolio, o.limits.max_capital_deployed_pct
    after = p.deployed + o.proposal.notional
    if o.proposal.opening and after * HUNDRED > p.equity * limit:
        value = ratio_pct(after, p.equity)
        return _reject(
            "capital_deployed",
            f"Capital deployed would exceed limit: {pct_over(value, limit)}",
            value=value,
            limit=limit,
        )
    return None


def _open_positions(o: _Order) -> RiskDecision | None:
    p, limit = o.portfolio, o.limits.max_open_positions
    if o.proposal.opening and not p.holds_symbol and p.open_positions + 1 > limit:
        return _reject(
            "open_positions",
            f"Max open positions exceeded: {p.open_positions + 1} > {limit}",
            value=p.open_positions + 1,
            limit=limit,
        )
    return None


CHECKS: tuple[tuple[str, Check], ...] = (
    ("kill_switch", _kill_switch),
    ("max_risk_per_trade", _max_risk),
    ("max_notional", _max_notional),
    ("price_deviation", _price_deviation),
    ("min_price", _min_price),
    ("max_adv", _max_adv),
    ("strategy_allocation", _strategy_allocation),
    ("strategy_drawdown", _strategy_drawdown),
    ("strategy_daily_loss", _strategy_daily_loss),
    ("min_liquidity", _min_liquidity),
    ("daily_drawdown", _daily_drawdown),
    ("total_drawdown", _total_drawdown),
    ("capital_deployed", _capital_deployed),
    ("open_positions", _open_positions),
)


def check_order(
    proposal: OrderProposal,
    *,
    portfolio: PortfolioView,
    strategy: StrategyView,
    market: MarketView,
    limits: RiskLimits,
    strategy_limits: StrategyLimits,
    kill_switch: KillSwitchView,
) -> RiskDecision:
    """APPROVED, or the first failing check with its reason (see the module docstring)."""
    order = _Order(proposal, portfolio, strategy, market, limits, strategy_limits, kill_switch)
    for _, check in CHECKS:
        decision = check(order)
        if decision is not None:
            return decision
    return APPROVED


def max_quantity(
    *,
    reference_price: Decimal,
    stop_distance: Decimal | None,
    portfolio: PortfolioView,
    market: MarketView,
    limits: RiskLimits,
) -> Decimal:
    """The largest quantity an opening order may have under the order-level limits.

    Zero when no quantity passes (a price check fails, equity or market data is missing). The
    result is exact, rounded down; the caller rounds it down to its lot size.
    """
    if reference_price <= 0 or portfolio.equity <= 0 or reference_price < limits.min_price:
        return ZERO
    last, adv = market.last_price, market.average_daily_volume
    if last is None or last <= 0 or adv is None:
        return ZERO
    if abs(reference_price - last) * HUNDRED > last * limits.max_price_deviation_pct:
        return ZERO
    stop = stop_distance_for(reference_price, stop_distance, limits)
    with localcontext() as ctx:
        ctx.rounding = ROUND_FLOOR
        bounds = (
            portfolio.equity * limits.max_risk_per_trade_pct / (stop * HUNDRED),
            limits.max_notional_per_trade / reference_price,
            adv * limits.max_adv_pct / HUNDRED,
        )
    return max(min(bounds), ZERO)

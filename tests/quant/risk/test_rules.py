"""The Django-free risk core: every check at its boundary, the order of checks, closing orders,
tighten-only overrides, portfolio health, the circuit breaker and property tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant.errors import ValidationError
from quant.risk.health import (
    CircuitBreaker,
    CircuitState,
    EquityPoint,
    HealthStatus,
    check_portfolio_health,
)
from quant.risk.rules import (
    CHECKS,
    KillSwitchView,
    MarketView,
    OrderProposal,
    PortfolioView,
    RiskDecision,
    RiskLimits,
    StrategyLimits,
    StrategyView,
    check_order,
    effective_limits,
    max_quantity,
)
from quant.strategies.config import RiskOverrides

D = Decimal

PORTFOLIO = PortfolioView(
    equity=D(100_000),
    opening_equity=D(100_000),
    high_water_mark=D(100_000),
    cash=D(100_000),
    deployed=D(0),
    open_positions=0,
)
STRATEGY = StrategyView(
    allocation=D(50_000),
    equity=D(50_000),
    high_water_mark=D(50_000),
    session_pnl=D(0),
    deployed=D(0),
)
MARKET = MarketView(
    last_price=D(100),
    average_daily_volume=D(1_000_000),
    average_daily_dollar_volume=D(100_000_000),
)
ORDER = OrderProposal(
    strategy_id=7, symbol="AAPL", side="buy", quantity=D(10), reference_price=D(100)
)


def decide(
    order: OrderProposal = ORDER,
    *,
    portfolio: PortfolioView = PORTFOLIO,
    strategy: StrategyView = STRATEGY,
    market: MarketView = MARKET,
    limits: RiskLimits | None = None,
    strategy_limits: StrategyLimits | None = None,
    kill_switch: KillSwitchView | None = None,
    **order_changes: Any,
) -> RiskDecision:
    return check_order(
        replace(order, **order_changes),
        portfolio=portfolio,
        strategy=strategy,
        market=market,
        limits=limits or RiskLimits(),
        strategy_limits=strategy_limits or StrategyLimits(),
        kill_switch=kill_switch or KillSwitchView(),
    )


def rejected(decision: RiskDecision, check: str, reason: str) -> bool:
    assert not decision.approved, decision
    assert (decision.check, decision.reason) == (check, reason)
    return True


def test_a_modest_order_is_approved() -> None:
    decision = decide()
    assert decision.approved and decision.check == "" and decision.reason == "Approved"


# --- kill switch ----------------------------------------------------------------------------


def test_global_kill_switch_rejects_with_its_reason() -> None:
    ks = KillSwitchView(global_active=True, global_reason="manual halt")
    assert rejected(
        decide(kill_switch=ks), "kill_switch", "Kill switch active (global): manual halt"
    )


def test_strategy_kill_switch_rejects_and_global_comes_first() -> None:
    strategy_only = KillSwitchView(strategy_active=True, strategy_reason="bad fills")
    assert rejected(
        decide(kill_switch=strategy_only), "kill_switch", "Kill switch active (strategy): bad fills"
    )
    both = replace(strategy_only, global_active=True, global_reason="drawdown")
    assert decide(kill_switch=both).reason == "Kill switch active (global): drawdown"


def test_kill_switch_blocks_closing_orders_too() -> None:
    ks = KillSwitchView(global_active=True, global_reason="x")
    assert decide(kill_switch=ks, opening=False).check == "kill_switch"


# --- order level ----------------------------------------------------------------------------


def test_max_risk_with_a_stop_equal_passes_above_fails() -> None:
    # 100 shares x $20 stop = $2,000 = 2.00% of $100,000
    assert decide(quantity=D(100), stop_distance=D(20)).approved
    assert rejected(
        decide(quantity=D(125), stop_distance=D(20)),
        "max_risk_per_trade",
        "Max risk exceeded: 2.50% > 2.00%",
    )


def test_max_risk_uses_the_default_stop_and_never_shows_a_breach_as_equal() -> None:
    # no stop: 2% of $100 = $2 per share; 1,000 shares = $2,000 = 2.00%
    limits = RiskLimits(max_notional_per_trade=D(1_000_000), max_capital_deployed_pct=D(100))
    market = replace(MARKET, average_daily_volume=D(10**9))
    assert decide(quantity=D(1000), limits=limits, market=market).check != "max_risk_per_trade"
    decision = decide(quantity=D(1001), limits=limits, market=market)  # 2.002%
    assert rejected(decision, "max_risk_per_trade", "Max risk exceeded: 2.01% > 2.00%")


def test_max_notional_equal_passes_above_fails() -> None:
    assert decide(quantity=D(250)).approved  # $25,000
    assert rejected(
        decide(quantity=D(300)), "max_notional", "Notional exceeds limit: $30,000.00 > $25,000.00"
    )
    assert decide(quantity=D("250.01")).reason == (
        "Notional exceeds limit: $25,001.00 > $25,000.00"
    )


def test_price_deviation_equal_passes_above_fails_either_side() -> None:
    assert decide(reference_price=D(105)).approved
    assert decide(reference_price=D(95)).approved
    assert rejected(
        decide(reference_price=D("106.10")),
        "price_deviation",
        "Price deviates 6.10% from last price 100.00 (limit 5.00%)",
    )
    assert decide(reference_price=D("94.99")).reason == (
        "Price deviates 5.01% from last price 100.00 (limit 5.00%)"
    )


def test_min_price_equal_passes_below_fails() -> None:
    market = replace(MARKET, last_price=D(5))
    assert decide(reference_price=D(5), market=market).approved
    market = replace(MARKET, last_price=D("3.20"))
    assert rejected(
        decide(reference_price=D("3.20"), market=market),
        "min_price",
        "Price below minimum: $3.20 < $5.00",
    )


def test_a_price_just_under_the_minimum_never_reads_as_equal() -> None:
    market = replace(MARKET, last_price=D("4.999"))
    decision = decide(reference_price=D("4.999"), market=market)
    assert decision.reason == "Price below minimum: $4.99 < $5.00"


def test_quantity_vs_average_daily_volume() -> None:
    market = replace(MARKET, average_daily_volume=D(1000))
    assert decide(quantity=D(100), market=market).approved  # 10% of 1,000
    assert rejected(
        decide(quantity=D(101), market=market),
        "max_adv",
        "Quantity exceeds 10.00% of average daily volume: 101 > 100 (ADV 1,000)",
    )


@pytest.mark.parametrize(
    ("market", "check", "reason"),
    [
        (
            replace(MARKET, last_price=None),
            "price_deviation",
            "No last price for AAPL: cannot check the price",
        ),
        (
            replace(MARKET, average_daily_volume=None),
            "max_adv",
            "No average daily volume for AAPL: cannot check the quantity",
        ),
        (
            replace(MARKET, average_daily_dollar_volume=None),
            "min_liquidity",
            "No average daily dollar volume for AAPL: cannot check liquidity",
        ),
    ],
)
def test_unknown_market_data_rejects_an_opening_order(
    market: MarketView, check: str, reason: str
) -> None:
    assert rejected(decide(market=market), check, reason)
    assert decide(market=market, opening=False).approved


# --- strategy level -------------------------------------------------------------------------


def test_strategy_allocation_equal_passes_above_fails() -> None:
    limits = StrategyLimits(max_allocation_pct=D(10))
    strategy = replace(STRATEGY, deployed=D(9000))
    assert decide(strategy=strategy, strategy_limits=limits).approved  # 9,000 + 1,000 = 10%
    assert rejected(
        decide(strategy=replace(strategy, deployed=D(9100)), strategy_limits=limits),
        "strategy_allocation",
        "Strategy allocation exceeded: 10.10% > 10.00% of portfolio equity",
    )


def test_strategy_drawdown_equal_passes_above_fails() -> None:
    # 10% of the $50,000 allocation
    assert decide(strategy=replace(STRATEGY, high_water_mark=D(55_000))).approved
    assert rejected(
        decide(strategy=replace(STRATEGY, high_water_mark=D(55_050))),
        "strategy_drawdown",
        "Strategy drawdown exceeded: 10.10% > 10.00% of allocation (strategy paused)",
    )


def test_a_strategy_without_allocation_opens_nothing() -> None:
    strategy = replace(STRATEGY, allocation=D(0))
    assert decide(strategy=strategy).check == "strategy_drawdown"
    assert decide(strategy=strategy, opening=False).approved


def test_strategy_daily_loss_equal_passes_above_fails() -> None:
    assert decide(strategy=replace(STRATEGY, session_pnl=D(-1000))).approved
    assert rejected(
        decide(strategy=replace(STRATEGY, session_pnl=D(-1050))),
        "strategy_daily_loss",
        "Strategy daily loss exceeded: 2.10% > 2.00% of allocation (paused for the session)",
    )


def test_min_liquidity_equal_passes_below_fails() -> None:
    assert decide(market=replace(MARKET, average_daily_dollar_volume=D(500_000))).approved
    assert rejected(
        decide(market=replace(MARKET, average_daily_dollar_volume=D("499999.99"))),
        "min_liquidity",
        "Liquidity below minimum: $499,999.99 < $500,000.00 daily dollar volume",
    )


# --- portfolio level ------------------------------------------------------------------------


def test_daily_drawdown_equal_passes_above_fails() -> None:
    base = replace(PORTFOLIO, high_water_mark=D(100_000))
    assert decide(portfolio=replace(base, equity=D(97_000))).approved
    assert rejected(
        decide(portfolio=replace(base, equity=D(96_900))),
        "daily_drawdown",
        "Daily drawdown exceeded: 3.10% > 3.00% (new entries halted)",
    )


def test_total_drawdown_equal_passes_above_fails() -> None:
    at = replace(PORTFOLIO, equity=D(90_000), opening_equity=D(90_000))
    assert decide(portfolio=at).approved
    below = replace(PORTFOLIO, equity=D(89_000), opening_equity=D(89_000))
    assert rejected(
        decide(portfolio=below),
        "total_drawdown",
        "Total drawdown exceeded: 11.00% > 10.00% (kill switch)",
    )


def test_capital_deployed_equal_passes_above_fails() -> None:
    # 79,000 deployed + 1,000 order = 80%
    assert decide(portfolio=replace(PORTFOLIO, deployed=D(79_000))).approved
    assert rejected(
        decide(portfolio=replace(PORTFOLIO, deployed=D(79_100))),
        "capital_deployed",
        "Capital deployed would exceed limit: 80.10% > 80.00%",
    )


def test_open_positions_limit_counts_only_new_symbols() -> None:
    assert decide(portfolio=replace(PORTFOLIO, open_positions=19)).approved
    full = replace(PORTFOLIO, open_positions=20)
    assert rejected(
        decide(portfolio=full), "open_positions", "Max open positions exceeded: 21 > 20"
    )
    assert decide(portfolio=replace(full, holds_symbol=True)).approved


# --- order of checks and closing orders ------------------------------------------------------

# Every check failing at once; FIXES undo them one at a time in the spec's order.
BROKEN_PORTFOLIO = replace(
    PORTFOLIO,
    equity=D(80_000),
    opening_equity=D(100_000),
    high_water_mark=D(100_000),
    deployed=D(70_000),
    open_positions=20,
)
BROKEN: dict[str, Any] = {
    "kill_switch": KillSwitchView(global_active=True, global_reason="x"),
    "quantity": D(10_000),
    "stop_distance": D(10),
    "reference_price": D(3),
    "market": MarketView(D(4), D(50), D(1000)),
    "strategy": replace(
        STRATEGY, high_water_mark=D(60_000), session_pnl=D(-5000), deployed=D(80_000)
    ),
    "portfolio": BROKEN_PORTFOLIO,
}
FIXES: dict[str, dict[str, Any]] = {
    "kill_switch": {"kill_switch": KillSwitchView()},
    "max_risk_per_trade": {"stop_distance": D("0.01")},
    "max_notional": {"quantity": D(100)},
    "price_deviation": {"market": MarketView(D(3), D(50), D(1000))},
    "min_price": {"reference_price": D(5), "market": MarketView(D(5), D(50), D(1000))},
    "max_adv": {"market": MarketView(D(5), D(10_000), D(1000))},
    "strategy_allocation": {
        "strategy": replace(STRATEGY, high_water_mark=D(60_000), session_pnl=D(-5000))
    },
    "strategy_drawdown": {"strategy": replace(STRATEGY, session_pnl=D(-5000))},
    "strategy_daily_loss": {"strategy": STRATEGY},
    "min_liquidity": {"market": MarketView(D(5), D(10_000), D(10**9))},
    "daily_drawdown": {"portfolio": replace(BROKEN_PORTFOLIO, opening_equity=D(80_000))},
    "total_drawdown": {
        "portfolio": replace(BROKEN_PORTFOLIO, opening_equity=D(80_000), high_water_mark=D(80_000))
    },
    "capital_deployed": {
        "portfolio": replace(
            BROKEN_PORTFOLIO, opening_equity=D(80_000), high_water_mark=D(80_000), deployed=D(1000)
        )
    },
    "open_positions": {
        "portfolio": replace(
            BROKEN_PORTFOLIO,
            opening_equity=D(80_000),
            high_water_mark=D(80_000),
            deployed=D(1000),
            open_positions=0,
        )
    },
}


def test_checks_run_in_the_spec_order_and_stop_at_the_first_failure() -> None:
    assert [name for name, _ in CHECKS] == list(FIXES)
    state = dict(BROKEN)
    for name in FIXES:
        assert decide(**state).check == name
        state.update(FIXES[name])
    assert decide(**state).approved


def test_a_closing_order_passes_everything_but_the_kill_switch_and_price_deviation() -> None:
    state = {**BROKEN, "kill_switch": KillSwitchView(), "opening": False}
    assert decide(**state).check == "price_deviation"  # $3 vs last $4: a fat finger still fails
    state["market"] = MarketView(last_price=D(3))
    assert decide(**state).approved


# --- limits and overrides -------------------------------------------------------------------


def test_limits_default_to_the_spec() -> None:
    limits, strategy = RiskLimits(), StrategyLimits()
    assert limits.as_dict() == {
        "max_risk_per_trade_pct": D("2.0"),
        "max_notional_per_trade": D(25000),
        "max_price_deviation_pct": D("5.0"),
        "min_price": D("5.00"),
        "max_adv_pct": D("10.0"),
        "default_stop_pct": D("2.0"),
        "max_daily_drawdown_pct": D("3.0"),
        "max_total_drawdown_pct": D("10.0"),
        "max_capital_deployed_pct": D("80.0"),
        "max_open_positions": 20,
    }
    assert strategy.as_dict() == {
        "max_allocation_pct": D(100),
        "max_drawdown_pct": D(10),
        "max_daily_loss_pct": D(2),
        "min_liquidity": D(500000),
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_risk_per_trade_pct": D(150)}, "max_risk_per_trade_pct: must be a percentage"),
        ({"max_notional_per_trade": D(0)}, "max_notional_per_trade: must be > 0"),
        ({"min_price": D(-1)}, "min_price: must be >= 0"),
        ({"max_open_positions": D("2.5")}, "max_open_positions: must be a whole number"),
        ({"max_adv_pct": "ten"}, "max_adv_pct: expected a number"),
    ],
)
def test_bad_limits_name_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RiskLimits(**changes)


def test_limits_accept_strings_and_whole_decimals() -> None:
    limits = RiskLimits(max_notional_per_trade="1000", max_open_positions=D(3))  # type: ignore[arg-type]
    assert limits.max_notional_per_trade == D(1000) and limits.max_open_positions == 3


def test_overrides_only_tighten() -> None:
    overrides = RiskOverrides(
        max_risk_per_trade_pct=1.0,  # tighter: wins
        max_position_notional=50_000,  # looser: ignored
        min_price=10,  # tighter (higher): wins
        min_liquidity=100_000,  # looser (lower): ignored
        max_drawdown_pct=5,  # tighter: wins
        max_allocation_pct=100,  # equal
    )
    platform, strategy = effective_limits(RiskLimits(), StrategyLimits(), overrides)
    assert platform.max_risk_per_trade_pct == D("1.0")
    assert platform.max_notional_per_trade == D(25000)
    assert platform.min_price == D(10)
    assert platform.max_daily_drawdown_pct == D("3.0")  # not overridable
    assert strategy.min_liquidity == D(500000)
    assert strategy.max_drawdown_pct == D(5)
    assert strategy.max_allocation_pct == D(100)


def test_no_overrides_keep_the_limits() -> None:
    assert effective_limits(RiskLimits(), StrategyLimits(), None) == (
        RiskLimits(),
        StrategyLimits(),
    )
    assert effective_limits(RiskLimits(), StrategyLimits(), RiskOverrides()) == (
        RiskLimits(),
        StrategyLimits(),
    )


def test_bad_proposals_are_refused() -> None:
    with pytest.raises(ValidationError, match="quantity"):
        replace(ORDER, quantity=D(0))
    with pytest.raises(ValidationError, match="side"):
        replace(ORDER, side="hold")


# --- max_quantity ---------------------------------------------------------------------------


def sized(**changes: Any) -> Decimal:
    args: dict[str, Any] = {
        "reference_price": D(100),
        "stop_distance": None,
        "portfolio": PORTFOLIO,
        "market": MARKET,
        "limits": RiskLimits(),
    }
    args.update(changes)
    return max_quantity(**args)


def test_max_quantity_is_the_tightest_order_level_bound() -> None:
    assert sized() == D(250)  # notional: 25,000 / 100
    assert sized(stop_distance=D(40)) == D(50)  # risk: 2,000 / 40
    assert sized(market=replace(MARKET, average_daily_volume=D(300))) == D(30)  # 10% ADV
    assert sized(reference_price=D(3), market=replace(MARKET, last_price=D(3))) == 0
    assert sized(reference_price=D(110)) == 0  # deviates 10%
    assert sized(market=replace(MARKET, last_price=None)) == 0
    assert sized(portfolio=replace(PORTFOLIO, equity=D(0))) == 0


def test_max_quantity_rounds_down() -> None:
    result = sized(reference_price=D(7), market=replace(MARKET, last_price=D(7)))
    assert result * 7 <= D(25000) and result > D("3571.428")


# --- properties -----------------------------------------------------------------------------

money_values = st.decimals(min_value=D(1), max_value=D(10**6), places=2)
quantities = st.decimals(min_value=D("0.01"), max_value=D(10**5), places=2)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    last = draw(st.decimals(min_value=D(1), max_value=D(500), places=2))
    price = last * draw(st.decimals(min_value=D("0.9"), max_value=D("1.1"), places=3))
    equity = draw(money_values)
    return {
        "order": OrderProposal(
            strategy_id=1,
            symbol="X",
            side=draw(st.sampled_from(["buy", "sell"])),
            quantity=draw(quantities),
            reference_price=price.quantize(D("0.01")) or D("0.01"),
            stop_distance=draw(
                st.none() | st.decimals(min_value=D("0.01"), max_value=D(50), places=2)
            ),
            opening=draw(st.booleans()),
        ),
        "portfolio": PortfolioView(
            equity=equity,
            opening_equity=equity
            + draw(st.decimals(min_value=-D(1000), max_value=D(5000), places=2)),
            high_water_mark=equity
            + draw(st.decimals(min_value=D(0), max_value=D(20000), places=2)),
            cash=equity,
            deployed=draw(st.decimals(min_value=D(0), max_value=equity, places=2)),
            open_positions=draw(st.integers(min_value=0, max_value=25)),
            holds_symbol=draw(st.booleans()),
        ),
        "strategy": StrategyView(
            allocation=draw(money_values),
            equity=D(1000),
            high_water_mark=D(1000) + draw(st.decimals(min_value=D(0), max_value=D(200), places=2)),
            session_pnl=draw(st.decimals(min_value=-D(500), max_value=D(500), places=2)),
            deployed=draw(st.decimals(min_value=D(0), max_value=D(10**5), places=2)),
        ),
        "market": MarketView(
            last_price=draw(st.none() | st.just(last)),
            average_daily_volume=draw(
                st.none() | st.decimals(min_value=D(0), max_value=D(10**7), places=0)
            ),
            average_daily_dollar_volume=draw(st.none() | money_values.map(lambda v: v * 10)),
        ),
    }


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.decimals(min_value=D("0.01"), max_value=D(1), places=2))
def test_an_approved_order_stays_approved_when_it_shrinks(
    scenario: dict[str, Any], fraction: Decimal
) -> None:
    if not decide(**scenario).approved:
        return
    smaller = (scenario["order"].quantity * fraction).quantize(D("0.0001"), ROUND_FLOOR)
    if smaller > 0:
        assert decide(**scenario, quantity=smaller).approved


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_an_approved_opening_order_never_exceeds_max_quantity(scenario: dict[str, Any]) -> None:
    order = replace(scenario["order"], opening=True)
    if decide(**{**scenario, "order": order}).approved:
        assert order.quantity <= max_quantity(
            reference_price=order.reference_price,
            stop_distance=order.stop_distance,
            portfolio=scenario["portfolio"],
            market=scenario["market"],
            limits=RiskLimits(),
        )


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_max_quantity_passes_the_order_level_checks(scenario: dict[str, Any]) -> None:
    order = scenario["order"]
    bound = max_quantity(
        reference_price=order.reference_price,
        stop_distance=order.stop_distance,
        portfolio=scenario["portfolio"],
        market=scenario["market"],
        limits=RiskLimits(),
    ).quantize(D("0.01"), ROUND_FLOOR)
    if bound > 0:
        decision = decide(**scenario, quantity=bound, opening=True)
        order_level = {name for name, _ in CHECKS[1:6]}
        assert decision.check not in order_level, decision


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.booleans(), st.booleans())
def test_the_kill_switch_always_wins(
    scenario: dict[str, Any], global_active: bool, strategy_active: bool
) -> None:
    if not (global_active or strategy_active):
        strategy_active = True
    ks = KillSwitchView(global_active=global_active, strategy_active=strategy_active)
    assert decide(**scenario, kill_switch=ks).check == "kill_switch"


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_a_closing_order_is_stopped_only_by_the_kill_switch_or_a_price_deviation(
    scenario: dict[str, Any],
) -> None:
    decision = decide(**scenario, opening=False)
    assert decision.approved or decision.check == "price_deviation"


# --- portfolio health -----------------------------------------------------------------------


def test_a_calm_portfolio_is_healthy() -> None:
    report = check_portfolio_health(PORTFOLIO, RiskLimits())
    assert report.status is HealthStatus.HEALTHY and report.reasons == ()


def test_health_warns_at_75_percent_of_a_limit() -> None:
    below = check_portfolio_health(replace(PORTFOLIO, equity=D("97760")), RiskLimits())
    assert below.status is HealthStatus.HEALTHY  # 2.24%
    report = check_portfolio_health(replace(PORTFOLIO, equity=D(97_750)), RiskLimits())
    assert report.status is HealthStatus.WARNING
    assert report.reasons == ("Daily drawdown 2.25% is at 75% of its limit 3.00%",)


def test_health_at_a_limit_is_a_warning_above_it_critical() -> None:
    at = check_portfolio_health(replace(PORTFOLIO, open_positions=20), RiskLimits())
    assert at.status is HealthStatus.WARNING
    report = check_portfolio_health(
        replace(PORTFOLIO, equity=D(89_000), opening_equity=D(89_000), deployed=D(10_000)),
        RiskLimits(),
    )
    assert report.status is HealthStatus.CRITICAL
    assert report.reasons == ("Total drawdown 11.00% > limit 10.00%",)
    assert report.metrics["total_drawdown_pct"] == D(11)


def test_non_positive_equity_is_critical() -> None:
    report = check_portfolio_health(replace(PORTFOLIO, equity=D(-5)), RiskLimits())
    assert report.status is HealthStatus.CRITICAL
    assert report.reasons == ("Equity is not positive: -$5.00",)


# --- circuit breaker ------------------------------------------------------------------------

DAY = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)


def curve(*values: int, days: int = 0) -> list[EquityPoint]:
    """Equity points an hour apart; the first ``days`` of them a day apart before that."""
    points = [
        EquityPoint(DAY - timedelta(days=days - i), D(v)) for i, v in enumerate(values[:days])
    ]
    points += [EquityPoint(DAY + timedelta(hours=i), D(v)) for i, v in enumerate(values[days:])]
    return points


def test_no_equity_means_an_inactive_breaker() -> None:
    breaker = CircuitBreaker(RiskLimits())
    assert breaker.trigger_if_threshold_breached() is None
    assert breaker.check_drawdown([]) is CircuitState.INACTIVE


def test_a_daily_drawdown_above_its_limit_halts_entries_without_the_kill_switch() -> None:
    breaker = CircuitBreaker(RiskLimits())
    assert breaker.check_drawdown(curve(100_000, 97_000)) is CircuitState.INACTIVE  # exactly 3%
    assert breaker.check_drawdown(curve(100_000, 96_900)) is CircuitState.ACTIVE
    assert breaker.reading is not None and breaker.reading.halt_entries
    assert breaker.trigger_if_threshold_breached() is None


def test_the_daily_drawdown_starts_at_the_session_open() -> None:
    breaker = CircuitBreaker(RiskLimits())
    # yesterday's 100k is the high water mark, not today's open
    assert breaker.check_drawdown(curve(100_000, 95_000, 93_000, days=1)) is CircuitState.INACTIVE
    assert breaker.check_drawdown(curve(100_000, 95_000), opening_equity=D(100_000)) is (
        CircuitState.ACTIVE
    )


def test_a_total_drawdown_above_its_limit_asks_for_the_kill_switch() -> None:
    breaker = CircuitBreaker(RiskLimits())
    assert breaker.check_drawdown(curve(100_000, 90_000, days=1)) is CircuitState.INACTIVE
    assert breaker.trigger_if_threshold_breached() is None
    assert breaker.check_drawdown(curve(100_000, 89_500, days=1)) is CircuitState.ACTIVE
    trigger = breaker.trigger_if_threshold_breached()
    assert trigger is not None
    assert (trigger.scope, trigger.source, trigger.flatten) == ("global", "auto", False)
    assert trigger.reason == (
        "Total drawdown 10.50% > 10.00% from high water mark $100,000.00 (kill switch)"
    )
    assert trigger.details["high_water_mark"] == "100000"

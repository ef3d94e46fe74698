"""Strategy pauses: stored when the gateway finds a breached drawdown or daily-loss limit, shown
in the trading state (API, dashboard, admin), lifted by an operator with a reason."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from quant.calendar import MarketCalendar
from quant.clock import ManualClock
from quant.errors import ConflictError
from quant.risk.state import TradingLevel
from quant.risk.values import RiskVerdict
from research.models import Strategy
from risk.gateway import order_risk_check, trading_state
from tests.support.api import client_for, make_user
from tests.support.dashboard import signed_in
from tests.trading.factories import account, flat_prices, paper_strategy
from trading.models import Order, StrategyPauseEvent, StrategyRuntime
from trading.services.orders import order_create
from trading.services.pauses import strategy_pause_lift

pytestmark = pytest.mark.django_db

D = Decimal
NOW = timezone.now().replace(hour=15, minute=0, second=0, microsecond=0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def strategy() -> Strategy:
    flat_prices("PAU", price="100", volume=5_000_000, end=NOW)
    account(equity="100000")
    return paper_strategy("pausable", symbols=("PAU",))


def check(
    strategy: Strategy, clock: ManualClock, *, side: str = "buy", opening: bool = True
) -> RiskVerdict:
    order: Order = order_create(
        strategy=strategy,
        mode="paper",
        broker="simulated",
        symbol="PAU",
        side=side,
        quantity=D("10"),
        opening=opening,
        clock=clock,
    )
    with transaction.atomic():
        return order_risk_check(order, clock)


def runtime_with(strategy: Strategy, **fields: object) -> StrategyRuntime:
    return StrategyRuntime.objects.create(strategy=strategy, mode="paper", **fields)


def test_a_drawdown_breach_pauses_the_strategy_until_lifted(
    strategy: Strategy, clock: ManualClock
) -> None:
    # Allocation 100,000 (100 % of equity), peak 112,000: a 12 % drawdown > 10 %.
    runtime_with(strategy, high_water_mark=D("112000"))

    breach = check(strategy, clock)
    clock.advance(timedelta(days=3))
    later = check(strategy, clock)
    exit_ = check(strategy, clock, side="sell", opening=False)

    assert breach.check == "strategy_drawdown"
    runtime = StrategyRuntime.objects.get(strategy=strategy, mode="paper")
    assert (runtime.paused_at, runtime.paused_until, runtime.paused_check) == (
        NOW,
        None,
        "strategy_drawdown",
    )
    assert runtime.paused_reason == breach.reason
    assert not later.approved and later.check == "strategy_paused"
    assert later.reason == f"Strategy paused until an operator lifts it: {breach.reason}"
    assert exit_.approved, exit_.reason
    (event,) = StrategyPauseEvent.objects.all()
    assert (event.action, event.limit, event.until) == ("paused", "strategy_drawdown", None)


def test_a_daily_loss_breach_pauses_until_the_next_session_opens(
    strategy: Strategy, clock: ManualClock
) -> None:
    # Session started at 104,000 of strategy equity: a 4 % loss of allocation > 2 %.
    runtime_with(strategy, session_date=NOW.date(), session_start_equity=D("104000"))

    breach = check(strategy, clock)

    assert breach.check == "strategy_daily_loss"
    opens = MarketCalendar().next_open(NOW)
    runtime = StrategyRuntime.objects.get(strategy=strategy, mode="paper")
    assert runtime.paused_until == opens and opens > NOW
    state = trading_state(strategy_id=strategy.pk, mode="paper", now=NOW)
    assert state.level is TradingLevel.REDUCING
    assert state.pause is not None and state.pause.until == opens
    assert not trading_state(strategy_id=strategy.pk, mode="paper", now=opens).pause


def test_lifting_the_pause_measures_the_drawdown_afresh(
    strategy: Strategy, clock: ManualClock
) -> None:
    runtime_with(strategy, high_water_mark=D("112000"))
    check(strategy, clock)
    admin = make_user("admin", "lifter")

    with pytest.raises(ConflictError, match="not paused in live mode"):
        strategy_pause_lift(strategy=strategy, mode="live", user=admin, reason="x")
    strategy_pause_lift(strategy=strategy, mode="paper", user=admin, reason="reviewed the loss")

    runtime = StrategyRuntime.objects.get(strategy=strategy, mode="paper")
    assert runtime.paused_at is None and runtime.high_water_mark is None
    lifted = StrategyPauseEvent.objects.get(action="lifted")
    assert (lifted.user, lifted.reason) == (admin, "reviewed the loss")
    assert check(strategy, clock).approved


def test_the_api_shows_the_state_and_lets_an_admin_lift_the_pause(
    strategy: Strategy, clock: ManualClock
) -> None:
    runtime_with(strategy, high_water_mark=D("112000"))
    check(strategy, clock)
    viewer = client_for(make_user("viewer", "vic"))
    operator = client_for(make_user("operator", "ola"))
    admin = client_for(make_user("admin", "adele"))

    listed = viewer.get("/v1/controls/trading-state", {"strategy_id": strategy.pk})
    (state,) = listed.json()["data"]
    assert (state["mode"], state["level"], state["gate_open"]) == ("paper", "reducing", True)
    assert state["pause"]["check"] == "strategy_drawdown"

    body = {"strategy_id": strategy.pk, "mode": "paper", "reason": "ok"}
    assert (
        operator.post("/v1/controls/pauses/lift", body, content_type="application/json").status_code
        == 403
    )
    lifted = admin.post("/v1/controls/pauses/lift", body, content_type="application/json")
    again = admin.post("/v1/controls/pauses/lift", body, content_type="application/json")

    assert lifted.status_code == 200 and lifted.json()["data"]["level"] == "active"
    assert again.status_code == 409 and "not paused" in again.json()["error"]["message"]


def test_the_dashboard_shows_the_pause_and_the_admin_lifts_it_in_the_admin(
    strategy: Strategy, clock: ManualClock
) -> None:
    runtime_with(strategy, high_water_mark=D("112000"))
    check(strategy, clock)
    admin_user = make_user("admin", "root")
    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    client: Client = signed_in(admin_user)

    page = client.get(f"/strategies/{strategy.pk}").content.decode()
    assert "Strategy drawdown exceeded" in page and "data-lift-form" in page

    runtime = StrategyRuntime.objects.get(strategy=strategy)
    client.post(
        "/admin/trading/strategyruntime/",
        {"action": "lift_pause", "_selected_action": [runtime.pk], "apply": "1", "reason": "ok"},
    )
    runtime.refresh_from_db()
    assert runtime.paused_at is None

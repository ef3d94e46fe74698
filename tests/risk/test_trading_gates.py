"""The mode gate answers the same through every interface that makes orders.

A strategy in research places no orders; in paper it trades paper only; in live it trades
live and paper. Every interface (the order service, the REST API, the dashboard's manual
order, ``manage.py place_order``, the trading loop) gets the same verdict, code and message,
and a refusal stores nothing. Flattening (the kill switch's, an operator's) always passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from quant.errors import ApplicationError
from quant.risk.state import mode_refusal
from research.models import Strategy
from tests.support.api import client_for, make_user
from tests.support.dashboard import signed_in
from tests.trading.operator_support import InstantBroker, daily_prices, trading_strategy
from trading.brokers import broker_override
from trading.models import Order, OrderEvent, OrderSource, Position, StrategyRuntime
from trading.services.loop import strategy_tick
from trading.services.reconcile import forget_process_reconciliation
from trading.services.submit import order_submit

pytestmark = pytest.mark.django_db

PAIRS = [
    ("research", "paper", False),
    ("research", "live", False),
    ("paper", "paper", True),
    ("paper", "live", False),
    ("live", "paper", True),
    ("live", "live", True),
]


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    code: str = ""
    message: str = ""


@pytest.fixture
def brokers() -> Iterator[dict[str, InstantBroker]]:
    pair = {"paper": InstantBroker(), "live": InstantBroker()}
    forget_process_reconciliation()
    for mode, broker in pair.items():
        broker_override(mode, broker)
    yield pair
    for mode in pair:
        broker_override(mode, None)
    forget_process_reconciliation()


def via_service(strategy: Strategy, mode: str, brokers: dict[str, InstantBroker]) -> Verdict:
    try:
        order_submit(
            strategy=strategy,
            mode=mode,
            symbol="SPY",
            side="buy",
            quantity=Decimal("1"),
            source=OrderSource.MANUAL,
        )
    except ApplicationError as error:
        return Verdict(False, error.code, error.message)
    return Verdict(True)


def _api_verdict(response: object) -> Verdict:
    status = response.status_code  # type: ignore[attr-defined]
    if status == 201:
        return Verdict(True)
    error = response.json()["error"]  # type: ignore[attr-defined]
    return Verdict(False, error["code"], error["message"])


def via_api(strategy: Strategy, mode: str, brokers: dict[str, InstantBroker]) -> Verdict:
    client = client_for(make_user("operator", "api_operator"))
    payload = {"strategy_id": strategy.pk, "symbol": "SPY", "side": "buy", "quantity": "1"}
    response = client.post("/v1/orders", {**payload, "mode": mode}, content_type="application/json")
    return _api_verdict(response)


def via_dashboard(strategy: Strategy, mode: str, brokers: dict[str, InstantBroker]) -> Verdict:
    """The manual order form: offered strategies, then its request (session cookie and the
    CSRF header, as ``dashboard.js`` sends it)."""
    user = make_user("operator", "desk_operator")
    page = signed_in(user).get("/positions")
    offered = f'<option value="{strategy.pk}">' in page.content.decode()
    assert offered == (mode_refusal(strategy.name, strategy.mode, "paper") is None)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/positions")
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/v1/orders",
        {"strategy_id": strategy.pk, "symbol": "SPY", "side": "buy", "quantity": "1", "mode": mode},
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    return _api_verdict(response)


def via_command(strategy: Strategy, mode: str, brokers: dict[str, InstantBroker]) -> Verdict:
    args = ["--strategy", strategy.name, "--symbol", "SPY", "--side", "buy", "--qty", "1"]
    try:
        call_command("place_order", *args, "--mode", mode, stdout=StringIO())
    except CommandError as error:
        code, _, message = str(error).partition(": ")
        return Verdict(False, code, message)
    return Verdict(True)


def via_loop(strategy: Strategy, mode: str, brokers: dict[str, InstantBroker]) -> Verdict:
    result = strategy_tick(strategy=strategy, broker=brokers[mode], mode=mode)
    if result.code:
        return Verdict(False, result.code, result.skipped)
    return Verdict(True)


INTERFACES: dict[str, Callable[[Strategy, str, dict[str, InstantBroker]], Verdict]] = {
    "service": via_service,
    "api": via_api,
    "dashboard": via_dashboard,
    "place_order": via_command,
    "loop": via_loop,
}


@pytest.mark.parametrize("interface", INTERFACES)
@pytest.mark.parametrize(("strategy_mode", "order_mode", "allowed"), PAIRS)
def test_every_interface_gives_the_same_verdict(
    interface: str,
    strategy_mode: str,
    order_mode: str,
    allowed: bool,
    brokers: dict[str, InstantBroker],
) -> None:
    daily_prices("SPY", "100")
    strategy = trading_strategy("gated", strategy_mode)

    verdict = INTERFACES[interface](strategy, order_mode, brokers)

    refusal = mode_refusal("gated", strategy_mode, order_mode)
    if allowed:
        assert refusal is None
        assert verdict == Verdict(True), verdict
        return
    assert refusal is not None
    assert verdict == Verdict(False, "gate_closed", refusal.reason)
    assert not Order.objects.exists() and not OrderEvent.objects.exists()
    assert not StrategyRuntime.objects.exists()
    assert not brokers["paper"].orders and not brokers["live"].orders


def test_the_refusals_read_as_the_gates_say() -> None:
    assert mode_refusal("s", "research", "paper") is not None
    research = mode_refusal("s", "research", "paper")
    paper_live = mode_refusal("s", "paper", "live")
    assert research is not None and paper_live is not None
    assert research.reason == (
        "Strategy s is in research mode: it places no orders until its promotion to paper "
        "is approved"
    )
    assert paper_live.reason == (
        "Strategy s is in paper mode: it trades live only after its promotion to live is approved"
    )


def test_a_successful_order_through_an_allowed_gate_is_filled(
    brokers: dict[str, InstantBroker],
) -> None:
    daily_prices("SPY", "100")
    strategy = trading_strategy("live_one", "live")

    order = order_submit(
        strategy=strategy, mode="paper", symbol="SPY", side="buy", quantity=Decimal("2")
    )

    assert order.status == "filled" and order.mode == "paper"
    assert list(brokers["paper"].orders) and not brokers["live"].orders


# --- exits: flattening is never gated -------------------------------------------------------


@pytest.fixture
def demoted_with_a_position(brokers: dict[str, InstantBroker]) -> Strategy:
    """A paper strategy that bought 5 SPY and was then demoted to research."""
    daily_prices("SPY", "100")
    strategy = trading_strategy("leftover", "paper")
    order_submit(strategy=strategy, mode="paper", symbol="SPY", side="buy", quantity=Decimal("5"))
    Strategy.objects.filter(pk=strategy.pk).update(mode="research")
    strategy.refresh_from_db()
    return strategy


def test_an_operator_flattens_a_research_strategys_position_in_the_admin(
    demoted_with_a_position: Strategy,
) -> None:
    admin = make_user("admin", "flattener")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    client = signed_in(admin)
    position = Position.objects.get(strategy=demoted_with_a_position)

    client.post(
        "/admin/trading/position/",
        {
            "action": "flatten_positions",
            "_selected_action": [position.pk],
            "apply": "1",
            "reason": "demoted",
        },
    )

    position.refresh_from_db()
    assert position.quantity == 0
    assert Order.objects.filter(source=OrderSource.OPERATOR, status="filled").count() == 1


def test_the_kill_switch_flattens_a_research_strategys_position(
    demoted_with_a_position: Strategy, django_capture_on_commit_callbacks: Any
) -> None:
    from risk.services import killswitch_activate

    with django_capture_on_commit_callbacks(execute=True):
        killswitch_activate(reason="stop everything", flatten=True)

    assert Position.objects.get(strategy=demoted_with_a_position).quantity == 0
    flatten = Order.objects.get(source=OrderSource.KILL_SWITCH)
    assert flatten.status == "filled" and flatten.side == "sell"


def test_a_manual_order_of_a_demoted_strategy_is_gated(
    demoted_with_a_position: Strategy, brokers: dict[str, InstantBroker]
) -> None:
    before = Order.objects.count()

    verdict = via_api(demoted_with_a_position, "paper", brokers)

    assert verdict.code == "gate_closed" and Order.objects.count() == before

"""``manage.py place_order`` and ``manage.py reconcile``: one service call each, clear errors,
non-zero exit (CommandError) when the order or the reconciliation did not succeed."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from research.models import Strategy, StrategyMode
from tests.trading.operator_support import InstantBroker, daily_prices, trading_strategy
from trading.brokers import broker_override
from trading.brokers.base import BrokerOrder, BrokerOrderStatus
from trading.models import Order, OrderSource, Position, ReconciliationRun, SafeMode
from trading.services.reconcile import forget_process_reconciliation

pytestmark = pytest.mark.django_db


@pytest.fixture
def paper_broker() -> Iterator[InstantBroker]:
    broker = InstantBroker()
    broker_override("paper", broker)
    forget_process_reconciliation()
    yield broker
    broker_override("paper", None)
    forget_process_reconciliation()


@pytest.fixture
def live_broker() -> Iterator[InstantBroker]:
    broker = InstantBroker()
    broker_override("live", broker)
    yield broker
    broker_override("live", None)


@pytest.fixture
def paper(db: None) -> Strategy:
    daily_prices("SPY", "100")
    return trading_strategy("ops_sma", StrategyMode.PAPER)


def place(*args: str) -> str:
    out = StringIO()
    call_command("place_order", *args, stdout=out)
    return out.getvalue()


def reconcile(*args: str) -> tuple[str, str, str | None]:
    """stdout, stderr and the CommandError's message (None when it exited 0)."""
    out, err = StringIO(), StringIO()
    try:
        call_command("reconcile", *args, stdout=out, stderr=err)
    except CommandError as error:
        return out.getvalue(), err.getvalue(), str(error)
    return out.getvalue(), err.getvalue(), None


# --- place_order ------------------------------------------------------------------------------


def test_a_market_order_prints_its_fill(paper: Strategy, paper_broker: InstantBroker) -> None:
    output = place("--strategy", "ops_sma", "--symbol", "spy", "--side", "buy", "--qty", "10")

    order = Order.objects.get()
    assert output.strip() == (
        f"{order.client_order_id} filled, filled 10 of 10 @ 100 (paper, instant)"
    )
    assert order.source == OrderSource.MANUAL and order.mode == "paper"
    assert order.symbol == "SPY" and order.order_type == "market"
    assert Position.objects.get(strategy=paper, symbol="SPY").quantity == Decimal("10")


def test_a_limit_order_by_strategy_id_rests_at_the_broker(
    paper: Strategy, paper_broker: InstantBroker
) -> None:
    output = place(
        "--strategy", str(paper.pk), "--symbol", "SPY", "--side", "buy", "--qty", "5",
        "--limit", "99.50", "--stop-distance", "2",
    )  # fmt: skip

    order = Order.objects.get()
    assert f"{order.client_order_id} submitted, filled 0 of 5" in output
    assert order.order_type == "limit" and order.limit_price == Decimal("99.5")
    assert order.stop_distance == Decimal("2")


def test_a_risk_rejection_prints_the_reason_and_fails(
    paper: Strategy, paper_broker: InstantBroker
) -> None:
    out = StringIO()
    with pytest.raises(CommandError, match=r"rejected: Notional exceeds limit: \$30,000"):
        call_command(
            "place_order", "--strategy", "ops_sma", "--symbol", "SPY", "--side", "buy",
            "--qty", "300", stdout=out,
        )  # fmt: skip

    order = Order.objects.get()
    assert order.status == "rejected" and order.client_order_id in str(out.getvalue())
    assert not paper_broker.orders  # never reached the broker


def test_a_broker_rejection_fails_with_the_brokers_reason(
    paper: Strategy, paper_broker: InstantBroker
) -> None:
    paper_broker.refuse.add("SPY")

    with pytest.raises(CommandError, match="Broker rejected: asset SPY is not tradable"):
        place("--strategy", "ops_sma", "--symbol", "SPY", "--side", "buy", "--qty", "1")

    assert Order.objects.get().status == "rejected"


def test_a_research_strategy_cannot_trade(paper_broker: InstantBroker) -> None:
    trading_strategy("lab_only", StrategyMode.RESEARCH)

    with pytest.raises(
        CommandError,
        match=r"^gate_closed: Strategy lab_only is in research mode: it places no orders until "
        r"its promotion to paper is approved$",
    ):
        place("--strategy", "lab_only", "--symbol", "SPY", "--side", "buy", "--qty", "1")

    assert not Order.objects.exists()


def test_live_orders_need_a_live_strategy(paper: Strategy, live_broker: InstantBroker) -> None:
    with pytest.raises(
        CommandError, match="is in paper mode: it trades live only after its promotion to live"
    ):
        place(
            "--strategy", "ops_sma", "--symbol", "SPY", "--side", "buy", "--qty", "1",
            "--mode", "live",
        )  # fmt: skip

    assert not Order.objects.exists() and not live_broker.orders


def test_a_live_strategy_trades_live_by_default(live_broker: InstantBroker) -> None:
    daily_prices("SPY", "100")
    trading_strategy("ops_live", StrategyMode.LIVE)
    forget_process_reconciliation()

    output = place("--strategy", "ops_live", "--symbol", "SPY", "--side", "buy", "--qty", "2")

    order = Order.objects.get()
    assert order.mode == "live" and order.status == "filled"
    assert "(live, instant)" in output and len(live_broker.orders) == 1


def test_an_unknown_strategy_is_named(paper_broker: InstantBroker) -> None:
    with pytest.raises(CommandError, match="unknown strategy 'nope': give its id or name"):
        place("--strategy", "nope", "--symbol", "SPY", "--side", "buy", "--qty", "1")


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--qty", "ten", "--qty: 'ten' is not a number"),
        ("--qty", "-5", "--qty: must be a positive number, got '-5'"),
        ("--qty", "NaN", "--qty: must be a positive number, got 'NaN'"),
        ("--limit", "1,5", "--limit: '1,5' is not a number"),
        ("--stop-distance", "0", "--stop-distance: must be a positive number, got '0'"),
    ],
)
def test_bad_numbers_are_refused_before_anything_is_stored(
    paper: Strategy, paper_broker: InstantBroker, flag: str, value: str, message: str
) -> None:
    args = {"--qty": "1", flag: value}
    flat = [part for pair in args.items() for part in pair]

    with pytest.raises(CommandError) as raised:
        place("--strategy", "ops_sma", "--symbol", "SPY", "--side", "buy", *flat)

    assert str(raised.value) == message
    assert not Order.objects.exists()


def test_a_bad_symbol_is_a_clear_error(paper: Strategy, paper_broker: InstantBroker) -> None:
    with pytest.raises(CommandError, match="symbol: 'S&P' is not a ticker"):
        place("--strategy", "ops_sma", "--symbol", "S&P", "--side", "buy", "--qty", "1")


# --- reconcile --------------------------------------------------------------------------------


def test_reconcile_prints_matched(paper: Strategy, paper_broker: InstantBroker) -> None:
    place("--strategy", "ops_sma", "--symbol", "SPY", "--side", "buy", "--qty", "10")

    out, err, failure = reconcile("--mode", "paper")

    assert failure is None and err == ""
    assert out == "paper: matched the broker (instant)\n"
    assert ReconciliationRun.objects.filter(mode="paper", matched=True).count() == 2


def test_reconcile_prints_each_discrepancy_and_fails(
    paper: Strategy, paper_broker: InstantBroker
) -> None:
    place("--strategy", "ops_sma", "--symbol", "SPY", "--side", "buy", "--qty", "10")
    paper_broker.extra_positions = {"SPY": Decimal("-4"), "QQQ": Decimal("5")}
    paper_broker.orders["X1"] = BrokerOrder(
        broker_order_id="X1",
        client_order_id="ghost-1",
        symbol="IWM",
        side="buy",
        quantity=Decimal("1"),
        status=BrokerOrderStatus.NEW,
    )

    out, _, failure = reconcile()

    assert failure == "reconciliation failed for paper"
    assert "paper: MISMATCH with the broker (instant); safe mode is on" in out
    assert "  position QQQ: ours 0, broker 5" in out
    assert "  position SPY: ours 10, broker 6" in out
    assert "  order ghost-1 (IWM): broker_order_unknown, broker new, ours unknown here" in out
    assert SafeMode.objects.get(mode="paper").active


def test_reconcile_reports_a_broker_error_and_fails(
    paper: Strategy, paper_broker: InstantBroker
) -> None:
    paper_broker.down = True

    _, err, failure = reconcile("--mode", "paper")

    assert failure == "reconciliation failed for paper"
    assert err == "paper: broker error: RetryableBrokerError: connection refused\n"
    assert ReconciliationRun.objects.get().error


def test_reconcile_without_mode_covers_live_when_it_is_enabled(
    paper: Strategy, paper_broker: InstantBroker, live_broker: InstantBroker
) -> None:
    live_broker.extra_positions = {"SPY": Decimal("1")}

    with override_settings(ALPACA_LIVE_TRADING_ENABLED=True):
        out, _, failure = reconcile()

    assert failure == "reconciliation failed for live"
    assert "paper: matched the broker" in out and "live: MISMATCH" in out


@override_settings(ALPACA_LIVE_TRADING_ENABLED=False)
def test_reconcile_names_a_broker_that_is_not_configured(db: None) -> None:
    _, err, failure = reconcile("--mode", "live")

    assert failure == "reconciliation failed for live"
    assert err.startswith("live: live trading on Alpaca is switched off")
    assert not ReconciliationRun.objects.exists()

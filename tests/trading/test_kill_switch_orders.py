"""The kill switch against the order path: no order is accepted after an activation commits.

"Accepted" means passed the risk gateway (``submit_started_at`` set). The gateway reads the
kill switch under the shared kill-switch lock inside the transaction that accepts the order,
so a check that overlaps an activation waits for its commit and then sees it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from risk import services as risk_services
from tests.trading.factories import AcceptingBroker, account, flat_prices, paper_strategy
from trading.brokers import broker_override
from trading.models import Order
from trading.services.reconcile import forget_process_reconciliation
from trading.services.submit import order_submit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker() -> Iterator[AcceptingBroker]:
    forget_process_reconciliation()
    double = AcceptingBroker()
    broker_override("paper", double)
    yield double
    broker_override("paper", None)
    forget_process_reconciliation()


def submit(strategy: Any, broker: AcceptingBroker, qty: str = "10") -> Order:
    try:
        return order_submit(
            strategy=strategy,
            mode="paper",
            broker=broker,
            symbol="SPY",
            side="buy",
            quantity=Decimal(qty),
            sleep=lambda _: None,
        )
    finally:
        connection.close()


def test_an_order_checked_during_an_activation_waits_for_it_and_is_rejected(
    broker: AcceptingBroker, monkeypatch: pytest.MonkeyPatch, on_postgres: bool
) -> None:
    if not on_postgres:
        pytest.skip("row locks need PostgreSQL")
    strategy = paper_strategy()
    flat_prices("SPY")
    account()
    inside = threading.Event()
    original = risk_services._event

    def slow_event(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        inside.set()
        time.sleep(0.6)  # the activation's transaction stays open: state written, not committed
        return result

    monkeypatch.setattr(risk_services, "_event", slow_event)
    submit(strategy, broker)  # warm-up: reconciles this process, accepted before the switch

    def activate() -> None:
        risk_services.killswitch_activate(reason="test halt")
        connection.close()

    activation = threading.Thread(target=activate)
    activation.start()
    assert inside.wait(5)
    started = time.monotonic()
    order = submit(strategy, broker)
    waited = time.monotonic() - started
    activation.join(5)

    assert order.status == "rejected"
    assert order.reject_reason.startswith("Kill switch active")
    assert order.submit_started_at is None and broker.placed[order.client_order_id] == 0
    assert waited > 0.3, "the gateway must wait for the activation's commit"


def test_orders_from_many_threads_none_accepted_after_activation_commits(
    broker: AcceptingBroker, on_postgres: bool
) -> None:
    if not on_postgres:
        pytest.skip("row locks need PostgreSQL")
    strategy = paper_strategy()
    flat_prices("SPY")
    account()
    submit(strategy, broker)
    committed_at: list[float] = []
    stop = threading.Event()
    outcomes: list[tuple[float, str, str]] = []  # (start time, client_order_id, status)
    lock = threading.Lock()

    def trader() -> None:
        while not stop.is_set():
            started = time.monotonic()
            order = submit(strategy, broker, qty="1")
            with lock:
                outcomes.append((started, order.client_order_id, order.status))

    threads = [threading.Thread(target=trader) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.4)
    risk_services.killswitch_activate(reason="halt under load")
    committed_at.append(time.monotonic())
    connection.close()
    time.sleep(0.4)
    stop.set()
    for thread in threads:
        thread.join(10)

    after = [o for o in outcomes if o[0] >= committed_at[0]]
    before = [o for o in outcomes if o[0] < committed_at[0]]
    assert after and before, "the test must overlap the activation"
    assert all(status == "rejected" for _, _, status in after)
    accepted_after = Order.objects.filter(
        client_order_id__in=[c for _, c, _ in after], submit_started_at__isnull=False
    )
    assert not accepted_after.exists()
    # The sweep cancelled what had been accepted before: nothing is left working.
    assert not [o for o in broker.orders.values() if o.status.is_open]
    assert all(n == 1 for n in broker.placed.values())


def test_a_total_drawdown_beyond_the_limit_activates_the_kill_switch(
    broker: AcceptingBroker,
) -> None:
    from risk.selectors import kill_switch_blocking
    from trading.services.reconcile import reconcile

    account(equity="100000")
    broker.equity = Decimal("91000")
    reconcile(mode="paper", broker=broker)
    assert kill_switch_blocking(strategy_id=None) is None  # 9% down: within the 10% limit

    broker.equity = Decimal("89000")
    reconcile(mode="paper", broker=broker)

    state = kill_switch_blocking(strategy_id=None)
    assert state is not None and state.source == "auto"
    assert "Total drawdown 11.00% > 10.00%" in state.reason


def test_portfolio_health_warns_near_a_limit_and_alerts(broker: AcceptingBroker) -> None:
    from monitoring.models import Alert
    from trading.services.reconcile import reconcile

    account(equity="100000")
    broker.equity = Decimal("97500")  # 2.5% down on the day: 83% of the 3% daily limit
    reconcile(mode="paper", broker=broker)

    alert = Alert.objects.get(source="risk.portfolio_health", severity="warning")
    assert "Portfolio health (paper) WARNING: Daily drawdown 2.50%" in alert.message

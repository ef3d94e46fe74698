"""One trading mode's broken configuration never stops another's reconciliation.

Before: ``trading.reconcile`` reconciled the modes in turn ("live" before "paper"), and a live
strategy while live trading is switched off made ``broker_for_mode("live")`` raise
``ConfigurationError`` every minute: paper was never reconciled again, and nobody was told.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from config.health import platform_health_full
from monitoring.models import Alert
from research.models import Strategy, StrategyMode
from tests.support.api import client_for, make_user
from tests.trading.factories import AcceptingBroker, paper_strategy
from trading.brokers import broker_override
from trading.models import ReconciliationRun
from trading.services.reconcile import forget_process_reconciliation
from trading.tasks import poll_orders, reconcile_all

pytestmark = pytest.mark.django_db


@pytest.fixture
def paper_and_broken_live(settings: SettingsWrapper) -> Iterator[AcceptingBroker]:
    settings.ALPACA_LIVE_TRADING_ENABLED = False
    broker = AcceptingBroker()
    forget_process_reconciliation()
    broker_override("paper", broker)
    broker_override("live", None)  # built from the settings: refused, live trading is off
    paper_strategy("paper_one")
    live = paper_strategy("live_one", symbols=("QQQ",))
    Strategy.objects.filter(pk=live.pk).update(mode=StrategyMode.LIVE)
    yield broker
    broker_override("paper", None)
    forget_process_reconciliation()


def test_a_broken_live_configuration_does_not_stop_paper_reconciliation(
    paper_and_broken_live: AcceptingBroker,
) -> None:
    results = reconcile_all()  # the beat's task

    by_mode = {r["mode"]: r for r in results}
    assert by_mode["paper"]["error"] == "" and by_mode["paper"]["matched"] is True
    assert by_mode["live"]["error"].startswith(
        "ConfigurationError: live trading on Alpaca is switched off"
    )
    assert ReconciliationRun.objects.filter(mode="paper", error="").count() == 1
    alert = Alert.objects.get(key="trading.reconcile_error.live")
    assert alert.severity == "critical"
    assert "Reconciliation (live) cannot run: ConfigurationError" in alert.message


def test_the_failing_mode_shows_in_health_even_with_live_trading_off(
    paper_and_broken_live: AcceptingBroker,
) -> None:
    reconcile_all()

    statuses = {s.name: s for s in platform_health_full()}
    assert statuses["broker_paper"].healthy
    assert not statuses["broker_live"].healthy
    assert "last reconciliation failed: ConfigurationError" in statuses["broker_live"].detail
    viewer: Client = client_for(make_user("viewer"))
    components = viewer.get("/v1/health").json()["data"]["components"]
    assert any(c["name"] == "broker_live" and not c["healthy"] for c in components)


def test_order_polling_goes_on_for_the_modes_that_work(
    paper_and_broken_live: AcceptingBroker,
) -> None:
    from trading.models import Order

    Order.objects.create(
        opening=True,
        strategy=Strategy.objects.get(name="live_one"),
        mode="live",
        client_order_id="live-1",
        symbol="QQQ",
        side="buy",
        order_type="market",
        quantity=1,
        status="submitted",
        created_at=timezone.now(),
    )

    assert poll_orders() == 0  # live fails on its own; no exception ends the task

    assert Alert.objects.filter(key="trading.poll_error.live").exists()

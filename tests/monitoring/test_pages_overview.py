"""The overview and health pages: kill-switch banner, P&L, drawdown, positions, alerts, roles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client

from marketdata.domain import Timeframe
from marketdata.services import bars_ingest
from monitoring.models import Alert
from monitoring.services import alert_acknowledge, alert_raise
from research.models import Strategy
from risk.services import killswitch_activate
from tests.support.dashboard import page, user_with_role
from tests.support.fixtures import make_bars
from trading.models import AccountSnapshot, Order, Position

pytestmark = pytest.mark.django_db


@pytest.fixture
def strategy() -> Strategy:
    return Strategy.objects.create(name="sma_spy", class_name="sma_crossover", symbols=["SPY"])


def test_the_banner_says_the_kill_switch_is_off_and_offers_it_to_operators(
    viewer: Client, operator: Client
) -> None:
    assert "Kill switch off" in page(viewer, "/")
    assert 'data-open-dialog="kill-switch-on"' not in page(viewer, "/")
    html = page(operator, "/")
    assert 'data-open-dialog="kill-switch-on"' in html and 'id="kill-switch-on"' in html
    assert 'name="reason"' in html  # the confirmation step asks for a reason
    assert 'id="kill-switch-off"' not in html  # deactivation is for admins


def test_an_active_kill_switch_shows_its_reason_and_admins_may_deactivate(
    viewer: Client, admin: Client
) -> None:
    killswitch_activate(reason="Broker feed looks wrong", user=user_with_role("ops", "operator"))
    banner = page(viewer, "/", fragment="killswitch")
    assert "Kill switch active (global)" in banner and "Broker feed looks wrong" in banner
    assert "by ops" in banner and "Deactivate" not in banner
    assert 'data-open-dialog="kill-switch-off"' in page(admin, "/", fragment="killswitch")
    assert 'id="kill-switch-off"' in page(admin, "/")


def test_alerts_are_listed_with_acknowledge_buttons_for_operators(
    viewer: Client, operator: Client
) -> None:
    alert = alert_raise(severity="critical", source="test", message="Reconciliation mismatch: AAPL")
    seen = alert_raise(severity="warning", source="test", message="already seen")
    alert_acknowledge(alert=seen, user=user_with_role("sam", "operator"))
    html = page(viewer, "/", fragment="alerts")
    assert "Reconciliation mismatch: AAPL" in html and "already seen" not in html
    assert "1 open: 1 critical" in html
    assert f'data-ack-alert="{alert.pk}"' not in html
    assert f'data-ack-alert="{alert.pk}"' in page(operator, "/", fragment="alerts")
    Alert.objects.all().delete()
    assert "No open alerts" in page(viewer, "/", fragment="alerts")


def test_positions_pnl_and_drawdown_in_exact_decimals(viewer: Client, strategy: Strategy) -> None:
    bars = make_bars("SPY", Timeframe.DAY_1, datetime(2024, 1, 2, tzinfo=UTC), 5)
    bars_ingest(symbol="SPY", timeframe=Timeframe.DAY_1, bars=bars, source="test")
    last = bars[-1].close
    Position.objects.create(
        strategy=strategy,
        mode="paper",
        symbol="SPY",
        quantity=Decimal("3"),
        avg_price=Decimal("100.10"),
        realized_pnl=Decimal("12.50"),
    )
    now = datetime.now(UTC)
    for minutes, equity in ((3, "100000"), (2, "110000"), (1, "99000")):
        AccountSnapshot.objects.create(
            mode="paper",
            broker="simulated",
            equity=Decimal(equity),
            cash=Decimal("50000"),
            buying_power=Decimal("50000"),
            ts=now - timedelta(minutes=minutes),
        )
    unrealized = (Decimal(str(last)) - Decimal("100.10")) * 3

    books = page(viewer, "/", fragment="books")
    assert "99,000.00" in books  # the newest equity
    assert "-10.00%" in books  # 99,000 against the 110,000 peak
    assert f"{(unrealized + Decimal('12.50')).quantize(Decimal('0.01')):,}" in books
    positions = page(viewer, "/", fragment="positions")
    assert "sma_spy" in positions and ">3<" in positions
    assert f"{unrealized.quantize(Decimal('0.01')):,}" in positions
    equity = page(viewer, "/", fragment="equity")
    assert 'id="figure-equity-paper"' in equity and 'id="figure-drawdown-paper"' in equity


def test_orders_show_the_rejection_reason_verbatim(viewer: Client, strategy: Strategy) -> None:
    Order.objects.create(
        strategy=strategy,
        mode="paper",
        broker="simulated",
        client_order_id="x-1",
        symbol="SPY",
        side="buy",
        quantity=Decimal("10"),
        opening=True,
        source="manual",
        status="rejected",
        reject_reason="Kill switch active (global): Broker feed looks wrong",
        created_at=datetime.now(UTC),
    )
    assert "Kill switch active (global): Broker feed looks wrong" in page(
        viewer, "/", fragment="orders"
    )
    assert "Kill switch active (global): Broker feed looks wrong" in page(viewer, "/positions")


def test_the_manual_order_form_is_for_operators(
    viewer: Client, operator: Client, strategy: Strategy
) -> None:
    assert "No strategy in paper or live mode" in page(operator, "/")  # research: gated
    Strategy.objects.filter(pk=strategy.pk).update(mode="paper")
    assert "data-order-form" in page(operator, "/") and "data-order-form" in page(
        operator, "/positions"
    )
    assert "data-order-form" not in page(viewer, "/") and "data-order-form" not in page(
        viewer, "/positions"
    )


def test_the_health_page_lists_components(viewer: Client) -> None:
    html = page(viewer, "/health")
    for name in (
        'data-component="database"',
        'data-component="job_queue"',
        'data-component="worker"',
    ):
        assert name in html
    assert "no worker has reported yet" in html
    assert 'data-component="beat"' in page(viewer, "/health", fragment="health")

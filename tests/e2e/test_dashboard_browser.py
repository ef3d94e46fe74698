"""The dashboard in a real browser: sign in, start a backtest and see its charts, the kill
switch and a manual order it rejects, acknowledging an alert; at desktop and phone width.

The live server runs no Celery worker: Celery runs tasks eagerly (``CELERY_TASK_ALWAYS_EAGER``)
so the backtest really executes, inside the request that queued it, after its commit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, ViewportSize, expect
from pytest_django.fixtures import Settings as SettingsWrapper

from backtests.models import BacktestRun, RunStatus
from monitoring.models import Alert
from monitoring.services import alert_raise
from research.models import Strategy, StrategyVersion
from risk.models import KillSwitchState
from tests.backtests.conftest import sma_version, stored_bars
from tests.support.dashboard import PASSWORD, user_with_role
from trading.models import Order

__all__ = ["sma_version", "stored_bars"]  # fixtures of the backtests tests, used here

pytestmark = pytest.mark.django_db(transaction=True)

DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}


def sign_in(page: Page, live_server: Any, username: str) -> None:
    page.goto(f"{live_server}/signin")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    ready(page)


def ready(page: Page) -> None:
    """The page's script has wired its buttons and drawn its charts."""
    expect(page.locator("html[data-ready='1']")).to_have_count(1)


def no_sideways_scroll(page: Page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow} px"


def test_sign_in_and_every_page_at_desktop_and_phone_width(
    page: Page, live_server: Any, screenshot_dir: Path, sma_version: StrategyVersion
) -> None:
    user_with_role("vera", "viewer")
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_server}/positions")
    expect(page).to_have_url(f"{live_server}/signin?next=/positions")
    page.fill("#id_username", "vera")
    page.fill("#id_password", "wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("correct username and password")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{live_server}/positions")
    expect(page.get_by_text("vera · viewer")).to_be_visible()

    for name, heading in [
        ("Overview", "Overview"),
        ("Strategies", "Strategies"),
        ("Runs", "Backtest runs"),
        ("Health", "System health"),
        ("Settings", "Settings"),
        ("Market data", "Market data"),
    ]:
        page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        page.screenshot(
            path=str(screenshot_dir / f"{name.lower().replace(' ', '-')}-1280.png"), full_page=True
        )
    page.goto(f"{live_server}/")
    expect(page.locator("[data-open-dialog='kill-switch-on']")).to_have_count(0)  # a viewer

    page.set_viewport_size(PHONE)
    for url, shot in [
        ("/", "overview-390.png"),
        ("/strategies", "strategies-390.png"),
        (f"/strategies/{sma_version.strategy_id}", "strategy-390.png"),
    ]:
        page.goto(f"{live_server}{url}")
        no_sideways_scroll(page)
        page.screenshot(path=str(screenshot_dir / shot), full_page=True)

    theme = page.evaluate("document.documentElement.dataset.theme")
    ready(page)
    page.locator("[data-theme-toggle]").click()
    flipped = page.evaluate("document.documentElement.dataset.theme")
    assert {theme, flipped} == {"dark", "light"}
    page.goto(f"{live_server}/")
    assert page.evaluate("document.documentElement.dataset.theme") == flipped  # remembered
    page.screenshot(path=str(screenshot_dir / f"overview-390-{flipped}.png"), full_page=True)

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{live_server}/signin")


def test_start_a_backtest_from_the_runs_page_and_see_its_charts(
    page: Page,
    live_server: Any,
    screenshot_dir: Path,
    settings: SettingsWrapper,
    stored_bars: dict[str, int],
    sma_version: StrategyVersion,
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    user_with_role("otto", "operator")
    page.set_viewport_size(DESKTOP)
    sign_in(page, live_server, "otto")
    page.goto(f"{live_server}/runs")
    ready(page)
    page.select_option("#run-strategy", str(sma_version.strategy_id))
    page.fill("#run-start", "2022-03-01")
    page.get_by_role("button", name="Start backtest").click()

    expect(page).to_have_url(__import__("re").compile(r"/runs/\d+$"), timeout=30_000)
    run = BacktestRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED and run.total_trades is not None
    assert run.start is not None and run.start.date().isoformat() == "2022-03-01"
    expect(page.get_by_role("heading", name=f"Run {run.pk}: sma_crossover")).to_be_visible()
    for chart in ("#chart-equity", "#chart-drawdown", "#chart-price-0"):
        expect(page.locator(f"{chart} .main-svg").first).to_be_visible()
    expect(page.locator("#chart-price-0")).to_contain_text("SPY: close and trades")
    expect(page.get_by_text("Sharpe ratio")).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "run-detail-1280.png"), full_page=True)

    page.set_viewport_size(PHONE)
    page.reload()
    expect(page.locator("#chart-equity .main-svg").first).to_be_visible()
    no_sideways_scroll(page)
    page.screenshot(path=str(screenshot_dir / "run-detail-390.png"), full_page=True)

    page.goto(f"{live_server}/runs")
    expect(page.locator(f"a[href='/runs/{run.pk}']").first).to_be_visible()
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=str(screenshot_dir / "runs-operator-1280.png"), full_page=True)


def test_kill_switch_from_the_overview_then_a_manual_order_is_rejected(
    page: Page, live_server: Any, screenshot_dir: Path, stored_bars: dict[str, int]
) -> None:
    strategy = Strategy.objects.create(  # in paper mode: the form offers no research strategy
        name="manual_desk", class_name="sma_crossover", symbols=["SPY"], mode="paper"
    )
    user_with_role("otto", "operator")
    page.set_viewport_size(DESKTOP)
    sign_in(page, live_server, "otto")
    expect(page.get_by_text("Kill switch off")).to_be_visible()

    page.get_by_role("button", name="Kill switch…").click()
    dialog = page.locator("dialog#kill-switch-on")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Activate kill switch").click()
    expect(dialog).to_be_visible()  # no reason, no activation (the field is required)
    assert not KillSwitchState.objects.get(scope="global").active
    dialog.get_by_label("Reason").fill("Broker feed looks wrong")
    page.screenshot(path=str(screenshot_dir / "kill-switch-dialog-1280.png"))
    dialog.get_by_role("button", name="Activate kill switch").click()
    expect(dialog).to_be_hidden()
    banner = page.locator("[data-kill-switch-active='global']")
    expect(banner).to_contain_text("Kill switch active (global)")
    expect(banner).to_contain_text("Broker feed looks wrong")
    state = KillSwitchState.objects.get(scope="global")
    assert state.active and state.reason == "Broker feed looks wrong"

    form = page.locator("form[data-order-form]")
    form.get_by_label("Strategy").select_option(str(strategy.pk))
    form.get_by_label("Symbol").fill("SPY")
    form.get_by_label("Quantity").fill("10")
    form.get_by_role("button", name="Place order").click()
    message = form.locator("[data-form-message]")
    expect(message).to_contain_text("Kill switch active (global): Broker feed looks wrong")
    order = Order.objects.get()
    assert order.status == "rejected" and order.reject_reason in message.inner_text()
    expect(page.locator(f"tr[data-order-id='{order.pk}']")).to_contain_text("Kill switch active")
    page.screenshot(path=str(screenshot_dir / "overview-kill-switch-1280.png"), full_page=True)

    page.set_viewport_size(PHONE)
    page.reload()
    ready(page)
    expect(page.locator("[data-kill-switch-active='global']")).to_be_visible()
    no_sideways_scroll(page)
    page.screenshot(path=str(screenshot_dir / "overview-kill-switch-390.png"), full_page=True)


def test_acknowledge_an_alert_on_the_overview(
    page: Page, live_server: Any, screenshot_dir: Path
) -> None:
    alert = alert_raise(
        severity="critical", source="trading.reconcile", message="Position mismatch: AAPL 10 vs 0"
    )
    user_with_role("otto", "operator")
    page.set_viewport_size(DESKTOP)
    sign_in(page, live_server, "otto")
    row = page.locator(f"tr[data-alert-id='{alert.pk}']")
    expect(row).to_contain_text("Position mismatch: AAPL 10 vs 0")
    page.screenshot(path=str(screenshot_dir / "overview-alert-1280.png"), full_page=True)
    row.get_by_role("button", name="Acknowledge").click()
    expect(row).to_have_count(0)
    expect(page.get_by_text("No open alerts.")).to_be_visible()
    alert.refresh_from_db()
    assert alert.acknowledged and alert.acknowledged_by is not None
    assert alert.acknowledged_by.username == "otto"
    assert not Alert.objects.filter(acknowledged_at__isnull=True).exists()

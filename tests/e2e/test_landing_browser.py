"""The market data page (``/marketdata``) and the admin in a real browser, at desktop and phone width."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from marketdata import services
from marketdata.domain import Timeframe
from tests.support.dashboard import PASSWORD, user_with_role

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def market_data() -> None:
    now = datetime.now(UTC)
    job = services.ingestion_job_create(
        provider="synthetic",
        symbols=["AAPL", "SPY"],
        timeframe=Timeframe.DAY_1,
        start=now - timedelta(days=120),
        end=now,
    )
    services.ingestion_job_run(job_id=job.pk)
    services.instrument_ensure(symbol="QQQ")


def sign_in(page: Page, live_server: object) -> None:
    user_with_role("vera", "viewer")
    page.goto(f"{live_server}/signin?next=/marketdata")
    page.fill("#id_username", "vera")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_landing_page_shows_instruments_counts_and_freshness(
    page: Page, live_server: object, market_data: None, screenshot_dir: Path
) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in(page, live_server)
    page.goto(f"{live_server}/marketdata")
    rows = page.locator("section").first.locator("tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("AAPL")
    expect(rows.nth(0)).to_contain_text("fresh")
    expect(rows.nth(1)).to_contain_text("QQQ")
    expect(rows.nth(1)).to_contain_text("no data")
    expect(page.get_by_text("Succeeded")).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "landing-1280.png"), full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server}/marketdata")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, (
        "the page scrolls sideways at phone width (tables must scroll inside their box)"
    )
    page.screenshot(path=str(screenshot_dir / "landing-390.png"), full_page=True)


def test_admin_sign_in_and_ingestion_jobs(
    page: Page, live_server: object, market_data: None
) -> None:
    User.objects.create_superuser("operator", password="a-long-test-password")
    page.goto(f"{live_server}/admin/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "a-long-test-password")
    page.click("input[type=submit]")
    expect(page.get_by_role("link", name="Ingestion jobs")).to_be_visible()
    page.get_by_role("link", name="Ingestion jobs").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list")).to_contain_text("Succeeded")

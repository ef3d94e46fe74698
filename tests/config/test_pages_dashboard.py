"""Every dashboard page: signed-in users only, renders on an empty database, fragments."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.support.dashboard import PASSWORD, page, user_with_role

pytestmark = pytest.mark.django_db

PAGES = ["/", "/strategies", "/positions", "/runs", "/health", "/settings", "/marketdata"]
FRAGMENTS = {
    "/": ["killswitch", "books", "equity", "positions", "alerts", "orders"],
    "/strategies": ["strategies"],
    "/positions": ["positions", "orders"],
    "/runs": ["runs"],
    "/health": ["health"],
    "/settings": ["limits", "pending"],
}


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_users_are_sent_to_sign_in(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/signin?next=")


@pytest.mark.parametrize("url", PAGES)
def test_every_page_renders_for_a_viewer_on_an_empty_database(viewer: Client, url: str) -> None:
    html = page(viewer, url)
    assert "<nav" in html and "Sign out" in html
    for link in (
        "Overview",
        "Strategies",
        "Positions",
        "Runs",
        "Health",
        "Settings",
        "Market data",
    ):
        assert f">{link}</a>" in html
    assert "cdn" not in html.lower() and 'src="http' not in html


@pytest.mark.parametrize(("url", "name"), [(u, n) for u, names in FRAGMENTS.items() for n in names])
def test_fragments_return_their_partial_only(viewer: Client, url: str, name: str) -> None:
    full = page(viewer, url)
    assert f'data-fragment="{name}"' in full
    partial = page(viewer, url, fragment=name)
    assert "<html" not in partial and "<nav" not in partial
    assert f'data-fragment="{name}"' not in partial  # the page keeps the wrapper


def test_an_unknown_fragment_is_404(viewer: Client) -> None:
    assert viewer.get("/", {"fragment": "nope"}).status_code == 404


def test_pages_say_how_often_they_refresh(viewer: Client) -> None:
    html = page(viewer, "/")
    assert 'data-fragment="positions" data-refresh="5000"' in html
    assert 'data-fragment="killswitch" data-refresh="5000"' in html
    assert 'data-fragment="alerts" data-refresh="5000"' in html
    assert 'data-fragment="runs" data-refresh="10000"' in page(viewer, "/runs")


def test_sign_in_with_a_password_then_sign_out(client: Client) -> None:
    user_with_role("vera", "viewer")
    assert "Sign in" in page(client, "/signin")
    wrong = client.post("/signin", {"username": "vera", "password": "nope"})
    assert wrong.status_code == 200 and "correct username and password" in wrong.content.decode()
    response = client.post(
        "/signin?next=/runs", {"username": "vera", "password": PASSWORD, "next": "/runs"}
    )
    assert response.status_code == 302 and response["Location"] == "/runs"
    assert client.get("/").status_code == 200
    assert "Sign out?" in page(client, "/signout")  # GET asks, POST signs out
    assert client.post("/signout")["Location"] == "/signin"
    assert client.get("/").status_code == 302


def test_static_assets_are_served_locally(viewer: Client) -> None:
    html = page(viewer, "/")
    assert "/static/js/plotly.min.js" in html and "/static/js/dashboard.js" in html
    assert "/static/js/theme.js" in html and "data-theme-toggle" in html


def test_push_is_announced_only_with_redis(viewer: Client, settings: object) -> None:
    assert 'data-push="0"' in page(viewer, "/")
    settings.REDIS_URL = "redis://127.0.0.1:6379/15"  # type: ignore[attr-defined]
    assert 'data-push="1"' in page(viewer, "/")

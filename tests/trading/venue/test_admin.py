"""The venue's admin pages show the book and change nothing."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.trading.venue.conftest import MakeBroker, add_bars, run, ticket
from trading.venue.models import VenueOrder

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("model", ["venueaccount", "venueorder", "venueposition"])
def test_admin_lists_the_book_read_only(
    model: str, admin_client: Client, make_broker: MakeBroker
) -> None:
    add_bars("SPY", [100.0, 100.0, 100.0])
    run(make_broker().place_order, ticket())

    listing = admin_client.get(f"/admin/trading_venue/{model}/")
    adding = admin_client.get(f"/admin/trading_venue/{model}/add/")

    assert listing.status_code == 200
    assert adding.status_code == 403


def test_admin_order_page_shows_its_fills_without_a_save_button(
    admin_client: Client, make_broker: MakeBroker
) -> None:
    add_bars("SPY", [100.0, 100.0, 100.0])
    run(make_broker().place_order, ticket())
    order = VenueOrder.objects.get()

    page = admin_client.get(f"/admin/trading_venue/venueorder/{order.pk}/change/")

    assert page.status_code == 200
    assert b"100.1" in page.content and b'name="_save"' not in page.content

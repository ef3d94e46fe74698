"""``POST /v1/orders`` with ``Idempotency-Key``: a client whose connection dropped retries
and gets the order the first request placed, never a second one.

Before: every retry placed another order (the client could not tell "filled" from "never
sent"). The rule lives in ``trading.services.submit.order_submit_once`` (the key is stored by
the order's own INSERT, unique per user), so concurrent retries are covered too.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from common.idempotency import idempotency_scope
from quant.errors import IdempotencyKeyReusedError
from research.models import Strategy
from tests.support.api import (
    client_for,
    make_user,
    paper_broker,  # noqa: F401  (fixture)
)
from tests.trading.factories import flat_prices, paper_strategy
from trading.models import Order
from trading.services.submit import order_submit_once

KEY = "7d3c8a1e-2f4b-4c55-9a0e-1b2c3d4e5f60"


@dataclass
class World:
    strategy: Strategy


def _world() -> World:
    """A paper strategy with prices and no position: an order goes straight through."""
    flat_prices("SPY")
    return World(paper_strategy("idempotent"))


@pytest.fixture
def world(db: None, paper_broker: Any) -> World:  # noqa: F811
    return _world()


def _order(client: Client, world: Any, key: str | None = KEY, quantity: str = "1") -> Any:
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.post(
        "/v1/orders",
        {"strategy_id": world.strategy.pk, "symbol": "SPY", "side": "buy", "quantity": quantity},
        content_type="application/json",
        headers=headers,
    )


@pytest.mark.django_db
def test_a_retry_with_the_same_key_returns_the_first_order(world: Any, paper_broker: Any) -> None:  # noqa: F811
    operator = client_for(make_user("operator"))
    before = Order.objects.count()

    first = _order(operator, world)
    again = _order(operator, world)

    assert first.status_code == 201, first.content
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    assert Order.objects.count() == before + 1
    assert sum(paper_broker.placed.values()) == 1


@pytest.mark.django_db
def test_without_a_key_every_request_places_an_order(world: Any) -> None:
    operator = client_for(make_user("operator"))
    before = Order.objects.count()

    _order(operator, world, key=None)
    _order(operator, world, key=None)

    assert Order.objects.count() == before + 2


@pytest.mark.django_db
def test_the_same_key_with_a_different_order_is_refused(world: Any) -> None:
    operator = client_for(make_user("operator"))
    _order(operator, world)
    before = Order.objects.count()

    other = _order(operator, world, quantity="2")

    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert Order.objects.count() == before


@pytest.mark.django_db
def test_one_users_key_never_finds_another_users_order(world: Any) -> None:
    before = Order.objects.count()

    mine = _order(client_for(make_user("operator", "alice")), world)
    theirs = _order(client_for(make_user("operator", "bob")), world)

    assert mine.json()["data"]["id"] != theirs.json()["data"]["id"]
    assert Order.objects.count() == before + 2


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "with space", "x" * 101, "naïve"])
def test_a_malformed_key_is_a_422_and_places_nothing(world: Any, key: str) -> None:
    operator = client_for(make_user("operator"))
    before = Order.objects.count()

    response = _order(operator, world, key=key)

    assert response.status_code == 422, response.content
    assert Order.objects.count() == before


@pytest.mark.django_db
def test_a_risk_rejection_replays_as_the_same_rejection(world: Any) -> None:
    operator = client_for(make_user("operator"))
    operator.post(
        "/v1/controls/kill-switch",
        {"action": "activate", "scope": "global", "reason": "replay test"},
        content_type="application/json",
    )

    first = _order(operator, world)
    again = _order(operator, world)

    assert first.status_code == again.status_code == 422
    assert first.json()["error"]["code"] == "risk_rejected"
    assert again.json()["error"]["details"] == first.json()["error"]["details"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_key_place_one_order(paper_broker: Any) -> None:  # noqa: F811
    world = _world()
    user = make_user("operator")
    key = idempotency_scope(user.pk, KEY)
    barrier = threading.Barrier(4)
    results: list[Any] = []

    def submit() -> None:
        try:
            barrier.wait()
            once = order_submit_once(
                idempotency_key=key,
                strategy=world.strategy,
                mode="paper",
                symbol="SPY",
                side="buy",
                quantity=Decimal("1"),
                reason="retry",
            )
            results.append((once.value.pk, once.replayed))
        except Exception as error:
            results.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert all(isinstance(r, tuple) for r in results), results
    assert len({pk for pk, _ in results}) == 1
    assert sorted(replayed for _, replayed in results) == [False, True, True, True]
    assert Order.objects.filter(idempotency_key=key).count() == 1
    assert sum(paper_broker.placed.values()) == 1


@pytest.mark.django_db
def test_the_service_refuses_a_reused_key_for_every_caller(world: Any) -> None:
    key = idempotency_scope(1, KEY)
    order_submit_once(
        idempotency_key=key,
        strategy=world.strategy,
        mode="paper",
        symbol="SPY",
        side="buy",
        quantity=Decimal("1"),
    )

    with pytest.raises(IdempotencyKeyReusedError):
        order_submit_once(
            idempotency_key=key,
            strategy=world.strategy,
            mode="paper",
            symbol="SPY",
            side="sell",
            quantity=Decimal("1"),
        )

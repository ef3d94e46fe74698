"""Found by the chaos test (``benchmarks/chaos.py``): an order request that dies between
storing the order and its risk check (its database connection dropped, its process killed)
left the order PENDING and never sent; the client's retry with the same ``Idempotency-Key``
got that order back (201, pending) and nothing ever placed or ended it (polling skipped it as
"not yet through the gateway", forever). The retry now carries the placement on, once; an
order nobody retries is cancelled by polling after the submit grace period.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import OperationalError
from django.utils import timezone

from common.idempotency import idempotency_scope
from quant.clock import ManualClock
from quant.orders.fsm import OrderStatus
from tests.support.api import paper_broker  # noqa: F401  (fixture)
from tests.trading.factories import flat_prices, paper_strategy
from trading.models import Order
from trading.services import submit
from trading.services.orders import SUBMIT_GRACE, order_create, order_place, order_refresh
from trading.services.submit import order_submit_once


@pytest.mark.django_db
def test_a_retry_places_the_order_its_first_request_stored_but_never_sent(
    paper_broker: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flat_prices("SPY")
    strategy = paper_strategy("interrupted")
    key = idempotency_scope(1, "interrupted-1")

    def connection_dropped(**kwargs: Any) -> Order:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(submit, "order_place", connection_dropped)
    with pytest.raises(OperationalError):
        order_submit_once(
            idempotency_key=key, strategy=strategy, mode="paper", symbol="SPY", side="buy",
            quantity=Decimal("2"),
        )  # fmt: skip
    stored = Order.objects.get(idempotency_key=key)
    assert (stored.status, stored.submit_started_at) == (OrderStatus.PENDING, None)
    assert sum(paper_broker.placed.values()) == 0

    monkeypatch.setattr(submit, "order_place", order_place)
    again = order_submit_once(
        idempotency_key=key, strategy=strategy, mode="paper", symbol="SPY", side="buy",
        quantity=Decimal("2"),
    )  # fmt: skip
    once_more = order_submit_once(
        idempotency_key=key, strategy=strategy, mode="paper", symbol="SPY", side="buy",
        quantity=Decimal("2"),
    )  # fmt: skip

    assert again.replayed and again.value.pk == stored.pk
    assert again.value.status == OrderStatus.SUBMITTED
    assert again.value.submit_started_at is not None
    assert once_more.value.pk == stored.pk and once_more.replayed
    assert paper_broker.placed[stored.client_order_id] == 1  # placed once, by the first retry
    assert Order.objects.filter(idempotency_key=key).count() == 1


@pytest.mark.django_db
def test_polling_cancels_an_order_never_sent_once_the_grace_is_over(
    paper_broker: Any,  # noqa: F811
) -> None:
    flat_prices("SPY")
    strategy = paper_strategy("abandoned")
    clock = ManualClock(timezone.now())
    order = order_create(
        strategy=strategy,
        mode="paper",
        broker=paper_broker.name,
        symbol="SPY",
        side="buy",
        quantity=Decimal("1"),
        opening=True,
        clock=clock,
    )  # fmt: skip  (its request died here, before the risk check, and no retry came)

    clock.advance(SUBMIT_GRACE - timedelta(seconds=1))
    assert order_refresh(order=order, broker=paper_broker, clock=clock).status == "pending"
    clock.advance(timedelta(seconds=1))
    order = order_refresh(order=order, broker=paper_broker, clock=clock)

    assert order.status == OrderStatus.CANCELLED and order.submit_started_at is None
    assert paper_broker.placed[order.client_order_id] == 0  # never sent late
    event = order.events.last()
    assert event is not None and event.event == "cancel"

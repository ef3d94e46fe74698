"""List endpoints run a constant number of SQL statements, whatever the page size."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.support.api import client_for, make_user, trading_world

pytestmark = pytest.mark.django_db

LISTS = [
    "/v1/strategies",
    "/v1/positions",
    "/v1/orders",
    "/v1/runs",
    "/v1/walk-forward",
    "/v1/models",
    "/v1/alerts",
    "/v1/controls/approvals",
]


def _more_rows() -> None:
    """Second strategies, runs, alerts and approvals so every list has many rows."""
    from backtests.models import BacktestRun
    from monitoring.services import alert_raise
    from risk.approvals import approval_request
    from tests.trading.factories import paper_strategy

    for i in range(30):
        strategy = paper_strategy(f"more_{i:02d}")
        approval_request(strategy=strategy, kind="promote_live", user=None, note="q")
        BacktestRun.objects.create(
            strategy=strategy,
            strategy_version=strategy.current_version,  # type: ignore[misc]
            strategy_config=strategy.current_version.config,  # type: ignore[union-attr]
            backtest_config={},
            symbols=["SPY"],
            timeframe="1Day",
        )
        alert_raise(severity="info", source="tests", message=f"alert {i}", key=f"k{i}")


def _count(client: Any, url: str, per_page: int) -> int:
    cache.clear()  # the throttle counters live in the cache (local memory here: no SQL)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, {"per_page": per_page})
    assert response.status_code == 200, response.content
    assert len(response.json()["data"]) <= per_page
    # A PREPARE is once per connection and statement shape (whichever test ran it first), so
    # only the statements of this request's own work are counted.
    return sum(1 for q in queries if not q["sql"].lstrip().upper().startswith("PREPARE"))


@pytest.mark.parametrize("url", LISTS)
def test_list_query_count_does_not_grow_with_the_page(url: str) -> None:
    trading_world(positions=40, orders=40)
    _more_rows()
    client = client_for(make_user("viewer"))
    small, large = _count(client, url, 2), _count(client, url, 200)
    assert small == large, f"{url}: {small} statements for 2 rows, {large} for 200"
    # principal + count + page, and for positions one read of every price on the page
    assert large <= 4

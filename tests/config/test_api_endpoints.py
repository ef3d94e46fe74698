"""The /v1 endpoints against real rows: envelopes, filters, writes through the services."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import yaml
from django.test import Client

from tests.support.api import (
    client_for,
    make_user,
    paper_broker,  # noqa: F401  (fixture)
    trading_world,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("paper_broker")]


@pytest.fixture
def world() -> Any:
    return trading_world()


@pytest.fixture
def viewer() -> Client:
    return client_for(make_user("viewer"))


@pytest.fixture
def operator() -> Client:
    return client_for(make_user("operator"))


@pytest.fixture
def admin() -> Client:
    return client_for(make_user("admin"))


def test_positions_list_values_positions_at_the_newest_close(world: Any, viewer: Client) -> None:
    world.positions[0].symbol = "SPY"
    world.positions[0].save()
    body = viewer.get("/v1/positions", {"per_page": 2, "page": 2}).json()
    assert body["pagination"] == {
        "page": 2,
        "per_page": 2,
        "total": 3,
        "total_pages": 2,
        "total_exact": True,
    }
    spy = next(p for p in body["data"] if p["symbol"] == "SPY")  # by name: S000, S002, SPY
    assert spy["last_price"] == "100"
    assert Decimal(spy["market_value"]) == Decimal("1000")
    assert Decimal(spy["unrealized_pnl"]) == Decimal("45")  # (100 - 95.5) * 10
    others = viewer.get("/v1/positions", {"symbol": "S001"}).json()["data"]
    assert [p["symbol"] for p in others] == ["S001"] and others[0]["last_price"] is None


def test_position_detail_lists_its_entry_orders(world: Any, viewer: Client) -> None:
    position = world.positions[0]
    position.symbol = "SPY"
    position.save()
    data = viewer.get(f"/v1/positions/{position.pk}").json()["data"]
    assert len(data["entry_orders"]) == 5
    assert viewer.get("/v1/positions/999999").json()["error"]["code"] == "not_found"


def test_orders_filters_and_date_range(world: Any, viewer: Client) -> None:
    assert viewer.get("/v1/orders").json()["pagination"]["total"] == 5
    sells = viewer.get("/v1/orders", {"side": "sell", "status": "filled"}).json()
    assert sells["pagination"]["total"] == 5  # unknown params are ignored, status matches all
    newest = world.orders[0].created_at.date()
    today = viewer.get("/v1/orders", {"from_date": newest, "to_date": newest}).json()
    assert [o["id"] for o in today["data"]] == [world.orders[0].pk]
    bad = viewer.get("/v1/orders", {"status": "lost"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"
    backwards = viewer.get("/v1/orders", {"from_date": "2026-02-02", "to_date": "2026-02-01"})
    assert backwards.status_code == 422
    detail = viewer.get(f"/v1/orders/{world.orders[1].pk}").json()["data"]
    assert detail["fills"][0]["price"] == "101"


def test_orders_count_stops_at_the_cap(
    world: Any, viewer: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trading.api

    monkeypatch.setattr(trading.api, "COUNT_CAP", 3)
    meta = viewer.get("/v1/orders", {"per_page": 2}).json()["pagination"]
    assert meta == {"page": 1, "per_page": 2, "total": 3, "total_pages": 2, "total_exact": False}
    page = viewer.get("/v1/orders", {"per_page": 2, "page": 3}).json()
    assert len(page["data"]) == 1  # the rows past the cap are still served


def test_a_role_change_applies_at_once(viewer: Client) -> None:
    from django.contrib.auth.models import Group, User

    assert viewer.get("/v1/auth/me").json()["data"]["role"] == "viewer"
    user = User.objects.get(username="viewer_user")
    user.groups.add(Group.objects.get_or_create(name="admin")[0])
    assert viewer.get("/v1/auth/me").json()["data"]["role"] == "admin"


def test_metrics_summary_aggregates_fills_and_the_equity_curve(world: Any, viewer: Client) -> None:
    data = viewer.get("/v1/metrics/summary", {"period": "1m", "mode": "paper"}).json()["data"]
    assert data["period"] == "1m" and data["mode"] == "paper"
    assert len(data["equity_curve"]) == 30  # one close per day
    assert Decimal(data["end_equity"]) == Decimal("104000")
    assert Decimal(data["total_pnl"]) == Decimal("104000") - Decimal(data["start_equity"])
    assert data["fills"] == 5 and data["closing_fills"] == 2
    assert Decimal(data["win_rate"]) == Decimal("0.5")  # +20 and -10
    assert Decimal(data["max_drawdown_pct"]) > 0
    assert data["sharpe"] is not None and data["sortino"] is not None
    assert data["strategies"][0]["name"] == "api_sma"
    assert Decimal(data["traded_notional"]) == Decimal(sum((100 + i) * 10 for i in range(5)))
    day = viewer.get("/v1/metrics/summary", {"period": "1d"}).json()["data"]
    assert day["fills"] == 1
    live = viewer.get("/v1/metrics/summary", {"mode": "live"}).json()["data"]
    assert live["equity_curve"] == [] and live["total_pnl"] is None
    assert viewer.get("/v1/metrics/summary", {"period": "2y"}).status_code == 422


def test_strategy_patch_validates_like_a_yaml_file(world: Any, admin: Client) -> None:
    url = f"/v1/strategies/{world.strategy.pk}"
    detail = admin.get(url).json()["data"]
    config = yaml.safe_load(detail["config_yaml"])
    config["params"]["fast"] = "three"
    config["colour"] = "red"
    bad = admin.patch(url, {"config": config}, content_type="application/json")
    assert bad.status_code == 422
    problems = bad.json()["error"]["details"]["problems"]
    assert any("params.fast" in p for p in problems) and any("colour" in p for p in problems)
    assert admin.get(url).json()["data"]["current_version"] == detail["current_version"]
    config["params"]["fast"] = 4
    del config["colour"]
    good = admin.patch(
        url, {"config_yaml": yaml.safe_dump(config)}, content_type="application/json"
    )
    assert good.status_code == 200, good.json()
    data = good.json()["data"]
    assert data["current_version"] == detail["current_version"] + 1
    assert data["versions"][0]["source"] == "api"
    broken = admin.patch(url, {"config_yaml": "name: [unclosed"}, content_type="application/json")
    assert broken.status_code == 422 and "not valid YAML" in broken.json()["error"]["message"]
    off = admin.patch(url, {"is_active": False}, content_type="application/json")
    assert off.json()["data"]["is_active"] is False


def test_runs_post_answers_202_with_a_location_and_runs_it(
    world: Any,
    operator: Client,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(
            "/v1/runs",
            {"strategy_id": world.strategy.pk, "initial_capital": "50000"},
            content_type="application/json",
        )
    assert response.status_code == 202, response.json()
    run_id = response.json()["data"]["id"]
    assert response["Location"] == f"/v1/runs/{run_id}"
    run = operator.get(response["Location"]).json()["data"]
    assert run["status"] == "succeeded", run
    assert run["backtest_config"]["initial_capital"] == "50000"
    listed = operator.get("/v1/runs", {"strategy_id": world.strategy.pk}).json()
    assert listed["pagination"]["total"] == 2
    bad = operator.post(
        "/v1/runs",
        {"strategy_id": world.strategy.pk, "start": "2026-05-01", "end": "2026-01-01"},
        content_type="application/json",
    )
    assert bad.status_code == 422, bad.json()


def test_kill_switch_then_a_manual_order_is_rejected_verbatim(
    world: Any, operator: Client, admin: Client
) -> None:
    from risk.services import admin_code_set

    on = operator.post(
        "/v1/controls/kill-switch",
        {"action": "activate", "scope": "global", "reason": "API test"},
        content_type="application/json",
    )
    assert on.status_code == 200 and on.json()["data"]["active"] is True
    order = operator.post(
        "/v1/orders",
        {"strategy_id": world.strategy.pk, "symbol": "SPY", "side": "buy", "quantity": "1"},
        content_type="application/json",
    )
    assert order.status_code == 422
    error = order.json()["error"]
    assert error["code"] == "risk_rejected"
    assert "Kill switch" in error["message"] and "API test" in error["message"]
    stored = operator.get(f"/v1/orders/{error['details']['order_id']}").json()["data"]
    assert stored["status"] == "rejected" and stored["reject_reason"] == error["message"]
    refused = operator.post(
        "/v1/controls/kill-switch",
        {"action": "deactivate", "admin_code": "x"},
        content_type="application/json",
    )
    assert refused.status_code == 403
    admin_code_set(code="open sesame 123")
    wrong = admin.post(
        "/v1/controls/kill-switch",
        {"action": "deactivate", "admin_code": "nope"},
        content_type="application/json",
    )
    assert wrong.status_code == 403 and "Wrong admin code" in wrong.json()["error"]["message"]
    off = admin.post(
        "/v1/controls/kill-switch",
        {"action": "deactivate", "admin_code": "open sesame 123"},
        content_type="application/json",
    )
    assert off.status_code == 200 and off.json()["data"]["active"] is False


def test_alert_acknowledge(world: Any, operator: Client, viewer: Client) -> None:
    url = f"/v1/alerts/{world.alert.pk}/acknowledge"
    assert viewer.patch(url).status_code == 403
    data = operator.patch(url).json()["data"]
    assert data["acknowledged"] is True and data["acknowledged_by"] == "operator_user"
    assert viewer.get("/v1/alerts", {"acknowledged": "false"}).json()["data"] == []


def test_mode_transition_demotes_at_once_and_promotions_need_a_second_admin(
    world: Any, admin: Client
) -> None:
    url = "/v1/controls/mode-transition"
    body = {"strategy_id": world.strategy.pk, "to_mode": "live", "reason": "ready"}
    promoted = admin.post(url, body, content_type="application/json")
    assert promoted.status_code == 202, promoted.json()
    approval = promoted.json()["data"]["approval"]
    assert approval["kind"] == "promote_live" and approval["status"] == "pending"
    own = admin.post(
        f"/v1/controls/approvals/{approval['id']}/decide",
        {"approve": True},
        content_type="application/json",
    )
    assert own.status_code == 403 and own.json()["error"]["code"] == "self_approval"
    second = client_for(make_user("admin", "second_admin"))
    decided = second.post(
        f"/v1/controls/approvals/{approval['id']}/decide",
        {"approve": True, "note": "ok"},
        content_type="application/json",
    )
    assert decided.status_code == 200 and decided.json()["data"]["status"] == "approved"
    assert admin.get(f"/v1/strategies/{world.strategy.pk}").json()["data"]["mode"] == "live"
    down = admin.post(
        url,
        {"strategy_id": world.strategy.pk, "to_mode": "research", "reason": "halt"},
        content_type="application/json",
    )
    assert down.status_code == 200 and down.json()["data"]["mode"] == "research"
    again = admin.post(
        url,
        {"strategy_id": world.strategy.pk, "to_mode": "research", "reason": "x"},
        content_type="application/json",
    )
    assert again.status_code == 409


def test_limit_change_request_and_decision(world: Any, admin: Client) -> None:
    asked = admin.post(
        "/v1/risk/limit-changes",
        {"scope": "platform", "values": {"max_open_positions": 10}, "reason": "tighter"},
        content_type="application/json",
    )
    assert asked.status_code == 201, asked.json()
    change = asked.json()["data"]
    limits = admin.get("/v1/risk/limits").json()["data"]
    assert [c["id"] for c in limits["pending_changes"]] == [change["id"]]
    second = client_for(make_user("admin", "second_admin"))
    decided = second.post(
        f"/v1/risk/limit-changes/{change['id']}/decide",
        {"approve": True},
        content_type="application/json",
    )
    assert decided.status_code == 200
    assert admin.get("/v1/risk/limits").json()["data"]["platform"]["max_open_positions"] == "10"
    unknown = admin.post(
        "/v1/risk/limit-changes",
        {"scope": "platform", "values": {"max_gizmos": 1}, "reason": "x"},
        content_type="application/json",
    )
    assert unknown.status_code == 422


def test_health_lists_every_component(viewer: Client) -> None:
    data = viewer.get("/v1/health").json()["data"]
    names = [c["name"] for c in data["components"]]
    for name in (
        "database",
        "job_queue",
        "worker",
        "beat",
        "redis",
        "broker_paper",
        "data_freshness",
    ):
        assert name in names
    assert data["status"] == "degraded"  # no worker or beat runs in the test

"""Input that never becomes a 500 (issue 17), under production-like settings (DEBUG off):
NUL characters, extreme dates, bodies over the upload limit, live orders while live trading
is off, duplicated symbols and decimals that are not what the schema says."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from tests.support.api import (
    PASSWORD,
    World,
    bearer,
    make_user,
    paper_broker,  # noqa: F401  (fixture)
    trading_world,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(settings: Any) -> World:
    settings.DEBUG = False
    settings.API_RATE_LIMIT_USER_PER_MINUTE = 0
    settings.API_RATE_LIMIT_IP_PER_MINUTE = 0
    settings.API_RATE_LIMIT_LOGIN_PER_MINUTE = 0
    cache.clear()
    return trading_world(positions=1, orders=1)


@pytest.fixture
def admin() -> Client:
    user = make_user("admin")
    return Client(
        headers={"Authorization": f"Bearer {bearer(user)}"}, raise_request_exception=False
    )


def post(client: Client, path: str, body: Any) -> Any:
    return client.post(path, json.dumps(body), content_type="application/json")


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    return dict(body["error"])


# --- NUL characters ---------------------------------------------------------------------


@pytest.mark.usefixtures("world")
def test_a_nul_in_the_unauthenticated_login_is_a_422_naming_the_field() -> None:
    response = post(
        Client(raise_request_exception=False),
        "/v1/auth/login",
        {"username": "ad\x00min", "password": "x"},
    )
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert error["details"]["problems"] == [
        "body.username: the NUL character (U+0000) is not allowed"
    ]


@pytest.mark.usefixtures("world")
@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/v1/orders", "symbol"),
        ("/v1/positions", "symbol"),
        ("/v1/models", "name"),
    ],
)
def test_a_nul_in_a_query_filter_is_a_422_naming_the_parameter(
    admin: Client, path: str, name: str
) -> None:
    response = admin.get(path, {name: "SP\x00Y"})
    assert response.status_code == 422
    assert f"query.{name}: the NUL character" in error_of(response)["message"]


def test_a_nul_anywhere_in_a_json_body_is_a_422_naming_its_path(
    world: World, admin: Client
) -> None:
    response = post(
        admin,
        "/v1/controls/kill-switch",
        {"action": "activate", "scope": "glo\x00bal", "reason": "x"},
    )
    assert response.status_code == 422
    assert "body.scope: the NUL character" in error_of(response)["message"]
    response = admin.patch(
        f"/v1/strategies/{world.strategy.pk}",
        json.dumps({"config": {"params": {"fa\x00st": 1}}}),
        content_type="application/json",
    )
    assert response.status_code == 422
    assert "body.config.params.fa\\x00st" in error_of(response)["message"]


@pytest.mark.usefixtures("world")
def test_a_nul_in_the_dashboard_signin_and_filters_is_a_400_page() -> None:
    anonymous = Client(raise_request_exception=False)
    response = anonymous.post("/signin", {"username": "a\x00", "password": PASSWORD})
    assert response.status_code == 400
    assert b"form.username: the NUL character" in response.content
    viewer = Client(raise_request_exception=False)
    viewer.force_login(make_user("viewer"))
    response = viewer.get("/runs", {"status": "x\x00"})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


# --- extreme dates ------------------------------------------------------------------------


@pytest.mark.usefixtures("world")
@pytest.mark.parametrize("path", ["/v1/orders", "/v1/alerts"])
@pytest.mark.parametrize(
    ("name", "value"),
    [("to_date", "9999-12-31"), ("from_date", "0001-01-01"), ("to_date", "0")],
)
def test_extreme_dates_are_a_422_naming_the_parameter_and_the_range(
    admin: Client, path: str, name: str, value: str
) -> None:
    response = admin.get(path, {name: value})
    assert response.status_code == 422
    message = error_of(response)["message"]
    assert f"query.{name}" in message
    assert "from 1900-01-01 to 2199-12-31" in message


def test_extreme_dates_of_a_run_are_refused_with_the_request(world: World, admin: Client) -> None:
    response = post(
        admin,
        "/v1/runs",
        {"strategy_id": world.strategy.pk, "start": "0001-01-01", "end": "9999-12-31"},
    )
    assert response.status_code == 422
    message = error_of(response)["message"]
    assert "body.payload.start" in message and "body.payload.end" in message


# --- bodies over the upload limit ---------------------------------------------------------


@pytest.mark.usefixtures("world")
def test_a_body_over_the_upload_limit_is_a_413_envelope(admin: Client, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = admin.post("/v1/orders", "x" * 2048, content_type="application/json")
    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "payload_too_large"
    assert error["details"] == {"limit_bytes": 1024}


@pytest.mark.usefixtures("world")
def test_a_form_over_the_upload_limit_is_a_413_page(settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = Client(raise_request_exception=False).post(
        "/signin", {"username": "x" * 2048, "password": "y"}
    )
    assert response.status_code == 413
    assert b"Request too large" in response.content


# --- live trading switched off ------------------------------------------------------------


@pytest.mark.usefixtures("paper_broker")
def test_a_live_order_while_live_trading_is_off_is_a_409(
    world: World, admin: Client, settings: Any
) -> None:
    from research.models import Strategy
    from trading.models import Order

    settings.ALPACA_LIVE_TRADING_ENABLED = False
    Strategy.objects.filter(pk=world.strategy.pk).update(mode="live")  # promoted to live
    before = Order.objects.count()
    response = post(
        admin,
        "/v1/orders",
        {"strategy_id": world.strategy.pk, "symbol": "SPY", "side": "buy", "quantity": "1"},
    )
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "live_trading_disabled"
    assert "live trading is not enabled" in error["message"]
    assert Order.objects.count() == before


# --- the schema says what the server accepts ------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/runs", "/v1/walk-forward"])
def test_duplicated_symbols_are_refused_with_the_request(
    world: World, admin: Client, path: str
) -> None:
    from backtests.models import BacktestRun, WalkForwardRun

    body = {
        "strategy_id": world.strategy.pk,
        "symbols": ["SPY", "QQQ", "SPY"],
        "in_sample_days": 30,
        "out_of_sample_days": 10,
        "step_days": 10,
    }
    runs = BacktestRun.objects.count(), WalkForwardRun.objects.count()
    response = post(admin, path, body)
    assert response.status_code == 422
    assert "body.payload.symbols: SPY is given twice" in error_of(response)["message"]
    assert (BacktestRun.objects.count(), WalkForwardRun.objects.count()) == runs


@pytest.mark.usefixtures("world")
def test_duplicated_symbols_of_a_training_are_refused_with_the_request(admin: Client) -> None:
    response = post(
        admin,
        "/v1/models",
        {
            "name": "m1",
            "feature_set": "technical_basic",
            "symbols": ["SPY", "SPY"],
            "start": "2024-01-01",
            "end": "2024-06-30",
        },
    )
    assert response.status_code == 422
    assert "SPY is given twice" in error_of(response)["message"]


@pytest.mark.usefixtures("world")
@pytest.mark.parametrize("quantity", [10, "1e3", "-1", "0", "0.0000001", " 1", "NaN"])
def test_quantities_are_plain_decimal_strings(admin: Client, quantity: Any) -> None:
    response = post(
        admin,
        "/v1/orders",
        {"strategy_id": 1, "symbol": "SPY", "side": "buy", "quantity": quantity},
    )
    assert response.status_code == 422
    assert "body.payload.quantity: expected a positive decimal" in error_of(response)["message"]


def test_the_schema_documents_patterns_and_the_nul_rule() -> None:
    from config.api import api

    document = api.get_openapi_schema()
    schemas = document["components"]["schemas"]
    assert schemas["OrderIn"]["properties"]["quantity"]["pattern"].startswith("^")
    assert schemas["JobIn" if "JobIn" in schemas else "BacktestIn"]["properties"]["symbols"][
        "anyOf"
    ][0]["uniqueItems"]
    assert "oneOf" in schemas["KillSwitchIn"]
    assert "U+0000" in document["info"]["description"]

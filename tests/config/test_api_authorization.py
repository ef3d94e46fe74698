"""Every /v1 endpoint x anonymous / viewer / operator / admin.

Anonymous callers get 401 everywhere but sign-in; a role below the endpoint's gets 403; a
role at or above it gets past authorization (2xx, or a domain answer such as 404/409/422 —
never 401 or 403). The table must name every operation in the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

import pytest

from config.api import api
from tests.support.api import (
    ROLES,
    World,
    client_for,
    make_user,
    paper_broker,  # noqa: F401  (fixture)
    role_rank,
    trading_world,
)

ADMIN_CODE = "matrix admin code"

# (method, path, body, least role)
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("get", "/v1/auth/me", None, "viewer"),
    ("post", "/v1/auth/logout", {}, "viewer"),
    ("get", "/v1/health", None, "viewer"),
    ("get", "/v1/metrics/summary", None, "viewer"),
    ("get", "/v1/strategies", None, "viewer"),
    ("get", "/v1/strategies/{strategy}", None, "viewer"),
    ("patch", "/v1/strategies/{strategy}", {"is_active": False}, "admin"),
    ("get", "/v1/positions", None, "viewer"),
    ("get", "/v1/positions/{position}", None, "viewer"),
    ("get", "/v1/orders", None, "viewer"),
    ("get", "/v1/orders/{order}", None, "viewer"),
    (
        "post",
        "/v1/orders",
        {"strategy_id": "{strategy}", "symbol": "SPY", "side": "buy", "quantity": "1"},
        "operator",
    ),
    ("get", "/v1/runs", None, "viewer"),
    ("post", "/v1/runs", {"strategy_id": "{strategy}"}, "operator"),
    ("get", "/v1/runs/{run}", None, "viewer"),
    ("post", "/v1/runs/{run}/cancel", None, "operator"),
    ("get", "/v1/walk-forward", None, "viewer"),
    (
        "post",
        "/v1/walk-forward",
        {
            "strategy_id": "{strategy}",
            "in_sample_days": 10,
            "out_of_sample_days": 5,
            "step_days": 5,
        },
        "operator",
    ),
    ("get", "/v1/walk-forward/999", None, "viewer"),
    ("post", "/v1/walk-forward/999/cancel", None, "operator"),
    ("get", "/v1/models", None, "viewer"),
    (
        "post",
        "/v1/models",
        {
            "name": "m1",
            "feature_set": "missing",
            "symbols": ["SPY"],
            "start": "2026-01-01",
            "end": "2026-06-01",
        },
        "operator",
    ),
    ("get", "/v1/models/999", None, "viewer"),
    ("get", "/v1/alerts", None, "viewer"),
    ("patch", "/v1/alerts/{alert}/acknowledge", None, "operator"),
    ("get", "/v1/controls/kill-switch", None, "viewer"),
    (
        "post",
        "/v1/controls/kill-switch",
        {"action": "activate", "scope": "global", "reason": "matrix"},
        "operator",
    ),
    (
        "post",
        "/v1/controls/kill-switch",
        {"action": "deactivate", "scope": "global", "admin_code": ADMIN_CODE},
        "admin",
    ),
    (
        "post",
        "/v1/controls/mode-transition",
        {"strategy_id": "{strategy}", "to_mode": "research", "reason": "matrix"},
        "admin",
    ),
    ("get", "/v1/controls/trading-state", None, "viewer"),
    (
        "post",
        "/v1/controls/pauses/lift",
        {"strategy_id": "{strategy}", "mode": "paper", "reason": "matrix"},
        "admin",
    ),
    ("get", "/v1/controls/approvals", None, "viewer"),
    ("post", "/v1/controls/approvals/999/decide", {"approve": True}, "admin"),
    ("get", "/v1/risk/limits", None, "viewer"),
    (
        "post",
        "/v1/risk/limit-changes",
        {"scope": "platform", "values": {"max_open_positions": 5}, "reason": "matrix"},
        "admin",
    ),
    ("post", "/v1/risk/limit-changes/999/decide", {"approve": False}, "admin"),
]
PUBLIC = {("post", "/v1/auth/login"), ("post", "/v1/auth/refresh")}


def _ids(world: World) -> dict[str, int]:
    return {
        "strategy": world.strategy.pk,
        "position": world.positions[0].pk,
        "order": world.orders[0].pk,
        "run": world.run.pk,
        "alert": world.alert.pk,
    }


def _fill(value: Any, ids: dict[str, int]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ids[value[1:-1]]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def test_the_table_names_every_operation() -> None:
    documented = {
        (method, path.replace("{", "<").replace("}", ">"))
        for path, operations in api.get_openapi_schema()["paths"].items()
        for method in operations
    }
    covered = {(m, _template(p)) for m, p, _, _ in ENDPOINTS} | {(m, p) for m, p in PUBLIC}
    assert documented == covered


def _template(path: str) -> str:
    """The OpenAPI form of a table path: ids and placeholders become the parameter names."""
    names = {
        "/v1/strategies/": "strategy_id",
        "/v1/positions/": "position_id",
        "/v1/orders/": "order_id",
        "/v1/runs/": "run_id",
        "/v1/walk-forward/": "run_id",
        "/v1/models/": "model_id",
        "/v1/alerts/": "alert_id",
        "/v1/controls/approvals/": "approval_id",
        "/v1/risk/limit-changes/": "change_id",
    }
    for prefix, name in names.items():
        if path.startswith(prefix):
            rest = path[len(prefix) :].split("/", 1)
            tail = f"/{rest[1]}" if len(rest) > 1 else ""
            return f"{prefix}<{name}>{tail}"
    return path


@pytest.mark.django_db
@pytest.mark.usefixtures("paper_broker")
@pytest.mark.parametrize("role", [None, *ROLES], ids=["anonymous", *ROLES])
@pytest.mark.parametrize(
    ("method", "path", "body", "least"),
    ENDPOINTS,
    ids=[f"{m} {p} {least}" for m, p, _, least in ENDPOINTS],
)
def test_authorization(
    role: str | None, method: str, path: str, body: dict[str, Any] | None, least: str
) -> None:
    from risk.services import admin_code_set

    world = trading_world(positions=1, orders=1)
    admin_code_set(code=ADMIN_CODE)
    ids = _ids(world)
    client = client_for(make_user(role) if role else None)
    url = path.format(**ids)
    kwargs: dict[str, Any] = {}
    if body is not None:
        kwargs = {"data": _fill(body, ids), "content_type": "application/json"}
    response = getattr(client, method)(url, **kwargs)
    status = response.status_code
    assert status < 500, response.content
    error = response.json().get("error") or {} if status >= 400 else {}
    if role is None:
        assert status == 401 and error["code"] == "unauthorized"
    elif role_rank(role) < role_rank(least):
        assert status == 403, response.json()
        assert error["code"] == "forbidden" and least in error["message"]
    else:
        assert status not in (401, 403), response.json()

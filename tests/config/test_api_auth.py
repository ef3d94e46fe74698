"""Sign-in, tokens, sessions, rate limits, CORS, the error shape and the offline docs."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from django.core.cache import cache
from django.test import Client

from common.auth import ACCESS, REFRESH, principal_for, token_issue
from tests.support.api import PASSWORD, bearer, client_for, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clear_throttles() -> None:
    cache.clear()


def _login(client: Client, username: str, password: str = PASSWORD) -> Any:
    return client.post(
        "/v1/auth/login",
        {"username": username, "password": password},
        content_type="application/json",
    )


def test_login_returns_a_token_pair_that_opens_the_api() -> None:
    make_user("operator")
    response = _login(Client(), "operator_user")
    assert response.status_code == 200
    tokens = response.json()["data"]
    assert tokens["token_type"] == "bearer" and tokens["role"] == "operator"
    me = Client(headers={"Authorization": f"Bearer {tokens['access_token']}"}).get("/v1/auth/me")
    assert me.json()["data"]["role"] == "operator"


def test_wrong_password_and_unknown_user_get_the_same_401() -> None:
    make_user("viewer")
    wrong = _login(Client(), "viewer_user", "nope")
    unknown = _login(Client(), "nobody", "nope")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == "unauthorized"


def test_refresh_gives_a_new_pair_and_rejects_an_access_token() -> None:
    user = make_user("viewer")
    response = Client().post(
        "/v1/auth/refresh",
        {"refresh_token": bearer(user, REFRESH)},
        content_type="application/json",
    )
    assert response.status_code == 200 and response.json()["data"]["access_token"]
    wrong_kind = Client().post(
        "/v1/auth/refresh", {"refresh_token": bearer(user, ACCESS)}, content_type="application/json"
    )
    assert wrong_kind.status_code == 401
    assert "not a refresh token" in wrong_kind.json()["error"]["message"]
    as_access = Client(headers={"Authorization": f"Bearer {bearer(user, REFRESH)}"})
    assert as_access.get("/v1/auth/me").status_code == 401


def test_expired_forged_and_disabled_tokens_are_refused() -> None:
    user = make_user("admin")
    principal = principal_for(user.pk)
    assert principal is not None
    expired = token_issue(principal, ACCESS, now=time.time() - 3600)
    response = Client(headers={"Authorization": f"Bearer {expired}"}).get("/v1/auth/me")
    assert response.status_code == 401 and "expired" in response.json()["error"]["message"]
    forged = jwt.encode({"sub": str(user.pk), "type": "access", "exp": 2**33}, "x" * 40, "HS256")
    response = Client(headers={"Authorization": f"Bearer {forged}"}).get("/v1/auth/me")
    assert response.status_code == 401
    client = client_for(user)
    user.is_active = False
    user.save()
    assert client.get("/v1/auth/me").status_code == 401


def test_the_dashboard_session_works_and_writes_need_the_csrf_token() -> None:
    user = make_user("operator")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/v1/auth/me").json()["data"]["username"] == "operator_user"
    body = {"action": "activate", "reason": "session test"}
    refused = client.post("/v1/controls/kill-switch", body, content_type="application/json")
    assert refused.status_code in (401, 403)
    client.get("/v1/auth/me")  # any page sets the csrftoken cookie; use the API's own
    from django.middleware.csrf import _get_new_csrf_string

    token = _get_new_csrf_string()
    client.cookies["csrftoken"] = token
    allowed = client.post(
        "/v1/controls/kill-switch",
        body,
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert allowed.status_code == 200, allowed.json()


def test_per_user_rate_limit_answers_429_with_retry_after(settings: Any) -> None:
    settings.API_RATE_LIMIT_USER_PER_MINUTE = 3
    client = client_for(make_user("viewer"))
    statuses = [client.get("/v1/auth/me").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = client.get("/v1/auth/me")
    assert response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60
    other = client_for(make_user("viewer", "other_viewer"))
    assert other.get("/v1/auth/me").status_code == 200  # another user has their own budget


def test_per_ip_rate_limit_covers_anonymous_callers(settings: Any) -> None:
    settings.API_RATE_LIMIT_LOGIN_PER_MINUTE = 2
    statuses = [
        Client()
        .post("/v1/auth/refresh", {"refresh_token": "x"}, content_type="application/json")
        .status_code
        for _ in range(3)
    ]
    assert statuses == [401, 401, 429]
    settings.API_RATE_LIMIT_IP_PER_MINUTE = 2
    client = client_for(make_user("viewer"))
    other_ip = client_for(make_user("viewer", "elsewhere"))
    assert [client.get("/v1/health").status_code for _ in range(3)][-1] == 429
    assert other_ip.get("/v1/auth/me", REMOTE_ADDR="10.0.0.9").status_code != 429


def _cors_allows(origin: str) -> bool:
    response = Client().options(
        "/v1/metrics/summary",
        headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
    )
    return bool(response.get("Access-Control-Allow-Origin") == origin)


def test_cors_trusts_no_wildcard_origin_by_default() -> None:
    """Regression: every https://*.vercel.app (anyone can deploy one) was trusted by default."""
    from django.conf import settings

    assert settings.CORS_ALLOWED_ORIGIN_REGEXES == []
    assert not _cors_allows("https://quant-dash.vercel.app")
    assert not _cors_allows("https://evil.vercel.app")


def test_cors_allows_the_configured_dashboards_only(settings: Any) -> None:
    settings.CORS_ALLOWED_ORIGINS = ["http://localhost:3000", "https://quant-dash.vercel.app"]
    for origin, allowed in (
        ("http://localhost:3000", True),
        ("https://quant-dash.vercel.app", True),
        ("https://other-dash.vercel.app", False),
        ("https://evil.example.com", False),
    ):
        assert _cors_allows(origin) is allowed, origin


def test_errors_have_one_shape() -> None:
    client = client_for(make_user("viewer"))
    for response, status in (
        (client.get("/v1/strategies/12345"), 404),
        (client.get("/v1/orders", {"page": 0}), 422),
        (Client().get("/v1/strategies"), 401),
        (
            client.post("/v1/auth/login", "{not json", content_type="application/json"),
            400,
        ),
    ):
        assert response.status_code == status
        error = response.json()["error"]
        assert set(error) == {"code", "message", "details"} and error["message"]


def test_openapi_and_offline_docs() -> None:
    schema = Client().get("/v1/openapi.json").json()
    assert schema["info"]["title"] == "Quant platform API"
    assert "/v1/metrics/summary" in schema["paths"]
    docs = Client().get("/v1/docs")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "cdn" not in html.lower() and "/static/" in html

"""The REST API ``/v1``: the NinjaAPI root, its error mapping and the routers of every app.

Every response is ``{"data": ...}`` (lists add ``"pagination"``); every error is
``{"error": {"code", "message", "details"}}`` with its HTTP status, mapped once here from the
``ApplicationError`` hierarchy and from ninja's own errors. OpenAPI at ``/v1/openapi.json``,
Swagger UI at ``/v1/docs`` (served from the ninja package: no CDN). The shapes every router
shares (envelopes, pagination) are in ``common.api``.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, Literal

import structlog
from django.contrib.auth import authenticate, logout
from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Field, NinjaAPI, Router, Schema
from ninja.errors import AuthenticationError, HttpError, Throttled
from ninja.errors import ValidationError as NinjaValidationError

from backtests.api import router as backtests_router
from backtests.api import walk_forward_router
from common.api import CODES, Data, JSONRenderer, Out, responses
from common.auth import (
    API_AUTH,
    AuthenticationFailed,
    RateLimited,
    Role,
    api_throttles,
    login_cooloff_seconds,
    login_lockout_message,
    login_throttle,
    principal_for,
    require_role,
    token_pair,
    token_refresh,
    tokens_logout,
)
from config.api_strategies import strategies_router
from config.health import platform_health_full
from config.middleware import too_large
from monitoring.api import alerts_router
from quant.errors import ApplicationError
from research.api import models_router
from risk.api import controls_router, risk_router
from trading.api import metrics_router, orders_router, positions_router

log = structlog.get_logger(__name__)
health_router = Router(tags=["health"])

# --- /v1/auth ---------------------------------------------------------------------------

auth_router = Router(tags=["auth"])


class LoginIn(Schema):
    username: str = Field(min_length=1, max_length=150)
    password: str = Field(min_length=1, max_length=512)


class RefreshIn(Schema):
    refresh_token: str = Field(min_length=1, max_length=4096)


class LogoutIn(Schema):
    refresh_token: str | None = Field(
        None, min_length=1, max_length=4096, description="also revoke this sign-in (optional)"
    )


class LogoutOut(Out):
    revoked: int = Field(description="token families (sign-ins) revoked")


class TokensOut(Out):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int
    role: str
    username: str


class MeOut(Out):
    id: int
    username: str
    role: str


@auth_router.post("/login", auth=None, response=responses(200, Data(TokensOut), 422, 429))
def login(request: HttpRequest, payload: LoginIn) -> dict[str, Any]:
    """Exchange a username and password for an access token and a refresh token (a new
    sign-in). Failures are counted per username and client address together (django-axes, as
    for the dashboard and the admin): too many lock that pair out for a while (429), never
    another user nor this user from another address."""
    user = authenticate(request, username=payload.username, password=payload.password)
    if user is None and getattr(request, "axes_locked_out", False):
        raise RateLimited(login_lockout_message(), retry_after=login_cooloff_seconds())
    principal = principal_for(user.pk) if user is not None else None
    if principal is None:
        raise AuthenticationFailed("wrong username or password")
    return {"data": token_pair(principal)}


@auth_router.post(
    "/refresh",
    auth=None,
    throttle=[login_throttle()],
    response=responses(200, Data(TokensOut), 422),
)
def refresh(request: HttpRequest, payload: RefreshIn) -> dict[str, Any]:
    """A new token pair for a refresh token, which is used up (rotation): a used one presented
    again revokes every token of its sign-in. The user must still be active and the sign-in
    not revoked (logout, password change, deactivation)."""
    return {"data": token_refresh(payload.refresh_token)}


@auth_router.post("/logout", response=responses(200, Data(LogoutOut), 403, 422))
def logout_tokens(request: HttpRequest, payload: LogoutIn) -> dict[str, Any]:
    """Sign out: revoke the sign-in of the bearer token (its refresh and access tokens) and of
    ``refresh_token`` when given; with the dashboard's session, end the session too."""
    principal = require_role(request, Role.VIEWER)
    revoked = tokens_logout(principal, payload.refresh_token)
    if principal.token_family is None:
        logout(request)
    return {"data": {"revoked": revoked}}


@auth_router.get("/me", response=responses(200, Data(MeOut)))
def me(request: HttpRequest) -> dict[str, Any]:
    principal = require_role(request, Role.VIEWER)
    return {
        "data": {
            "id": principal.user_id,
            "username": principal.username,
            "role": principal.role.label,
        }
    }


# --- The API and its error mapping ------------------------------------------------------

api = NinjaAPI(
    title="Quant platform API",
    version="1",
    description=(
        "Market data, strategies, backtests, walk-forward validation, models, paper and live "
        "trading, risk controls and alerts. Sign in with `POST /v1/auth/login` and send "
        "`Authorization: Bearer <access_token>`. Money and quantities are JSON strings (exact "
        "decimals, as each field's pattern says); days are `YYYY-MM-DD` from 1900-01-01 to "
        "2199-12-31. No string (query parameter, form field, JSON key or value) may contain "
        "the NUL character U+0000: 422 naming the field. A body over the upload limit is 413."
    ),
    urls_namespace="v1",
    docs_url="/docs",
    openapi_url="/openapi.json",
    auth=API_AUTH,
    throttle=api_throttles(),
    renderer=JSONRenderer(),
)


def error_response(
    request: HttpRequest,
    status: int,
    message: str,
    *,
    code: str | None = None,
    details: dict[str, Any] | None = None,
) -> HttpResponse:
    body = {
        "error": {
            "code": code or CODES.get(status, "error"),
            "message": message,
            "details": _jsonable(details or {}),
        }
    }
    return api.create_response(request, body, status=status)


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    """Pydantic error contexts may hold exceptions or Decimals: make them plain JSON."""
    result: dict[str, Any] = json.loads(json.dumps(value, default=str))
    return result


@api.exception_handler(ApplicationError)
def _application_error(request: HttpRequest, exc: ApplicationError) -> HttpResponse:
    response = error_response(
        request, exc.http_status, exc.message, code=exc.code, details=exc.details
    )
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


@api.exception_handler(NinjaValidationError)
def _request_invalid(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    problems = []
    for item in exc.errors:
        where = ".".join(str(part) for part in item.get("loc", ()))
        problems.append(f"{where}: {item.get('msg', 'invalid')}")
    message = "; ".join(problems) or "the request is not valid"
    return error_response(request, 422, message, details={"problems": problems})


@api.exception_handler(Throttled)
def _throttled(request: HttpRequest, exc: Throttled) -> HttpResponse:
    wait = math.ceil(exc.wait) if exc.wait else 60
    return error_response(
        request,
        429,
        f"too many requests: try again in {wait} s",
        details={"retry_after": wait},
    )


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return error_response(
        request, 401, "sign in first: send `Authorization: Bearer <access token>`"
    )


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return error_response(request, exc.status_code, str(exc))


@api.exception_handler(RequestDataTooBig)
def _too_large(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    # Normally answered by config.middleware before the view; this covers a late reader.
    return too_large(request)


@api.exception_handler(SuspiciousOperation)
def _malformed(request: HttpRequest, exc: SuspiciousOperation) -> HttpResponse:
    return error_response(request, 400, f"malformed request: {exc}")


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(request, 404, str(exc) or "not found")


@api.exception_handler(ObjectDoesNotExist)
def _does_not_exist(request: HttpRequest, exc: ObjectDoesNotExist) -> HttpResponse:
    return error_response(request, 404, str(exc) or "not found")


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    log.exception("api.unhandled_error", path=request.path, method=request.method)
    return error_response(
        request,
        500,
        "internal error: the request was not completed (details are in the server log)",
        details={"type": type(exc).__name__},
    )


# --- /v1/health -------------------------------------------------------------------------


class ComponentOut(Out):
    name: str
    healthy: bool
    detail: str


class HealthOut(Out):
    status: Literal["ok", "degraded"]
    checked_at: datetime
    components: list[ComponentOut]


@health_router.get("", response=responses(200, Data(HealthOut)))
def health(request: HttpRequest) -> dict[str, Any]:
    """Database, job queue, workers, beat, Redis, broker connection and data freshness.
    Always 200 for a signed-in caller (``/healthz`` is the load balancer's probe)."""
    require_role(request, Role.VIEWER)
    components = platform_health_full()
    return {
        "data": {
            "status": "ok" if all(c.healthy for c in components) else "degraded",
            "checked_at": timezone.now(),
            "components": [c.as_dict() for c in components],
        }
    }


def _register() -> None:
    api.add_router("/auth", auth_router)
    api.add_router("/health", health_router)
    api.add_router("/metrics", metrics_router)
    api.add_router("/strategies", strategies_router)
    api.add_router("/positions", positions_router)
    api.add_router("/orders", orders_router)
    api.add_router("/runs", backtests_router)
    api.add_router("/walk-forward", walk_forward_router)
    api.add_router("/models", models_router)
    api.add_router("/alerts", alerts_router)
    api.add_router("/controls", controls_router)
    api.add_router("/risk", risk_router)


_register()

"""Who may call the API and the dashboard: roles, JWT tokens and request-rate limits.

Roles rise viewer < operator < admin. A superuser or a member of the ``admin`` group is an
admin, a member of ``operator`` an operator; every other active user is a viewer. The API
takes a bearer access token (``POST /v1/auth/login``) or the dashboard's session cookie (with
the CSRF header on writes); both resolve to the same :class:`Principal`.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
import uuid
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import jwt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache
from django.db.models import Exists, OuterRef
from django.http import HttpRequest
from ninja.security import HttpBearer, SessionAuth
from ninja.throttling import BaseThrottle

from quant.errors import ApplicationError

ALGORITHM = "HS256"
ACCESS, REFRESH = "access", "refresh"


class Role(IntEnum):
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


ROLE_GROUPS = {Role.ADMIN: "admin", Role.OPERATOR: "operator", Role.VIEWER: "viewer"}


class AuthenticationFailed(ApplicationError):
    code = "unauthorized"
    http_status = 401


class PermissionDenied(ApplicationError):
    code = "forbidden"
    http_status = 403


class RateLimited(ApplicationError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


@dataclass(frozen=True)
class Principal:
    """The caller of one request: the user and the role it acts in."""

    user_id: int
    username: str
    role: Role

    def __str__(self) -> str:  # ninja's throttles key on str(request.auth)
        return f"user:{self.user_id}"


def _group_exists(name: str) -> Exists:
    groups = get_user_model().groups.through
    return Exists(groups.objects.filter(user_id=OuterRef("pk"), group__name=name))


_principals: dict[int, tuple[float, Principal | None]] = {}
_principals_lock = threading.Lock()


def principal_for(user_id: int) -> Principal | None:
    """The active user's principal; None when gone or disabled.

    Read in one statement and kept ``API_PRINCIPAL_CACHE_SECONDS`` (default 5) in this process:
    a change of the user or its groups made here clears it at once, one made by another
    process is seen within that time."""
    ttl = settings.API_PRINCIPAL_CACHE_SECONDS
    now = time.monotonic()
    cached = _principals.get(user_id)
    if ttl > 0 and cached is not None and cached[0] > now:
        return cached[1]
    principal = _principal_read(user_id)
    if ttl > 0:
        with _principals_lock:
            if len(_principals) > 10_000:
                _principals.clear()
            _principals[user_id] = (now + ttl, principal)
    return principal


def principals_forget(*_: Any, **__: Any) -> None:
    with _principals_lock:
        _principals.clear()


def connect_principal_invalidation() -> None:
    """Clear the cache when a user, a group or a membership changes (``QuantConfig.ready``)."""
    from django.contrib.auth.models import Group
    from django.db.models.signals import m2m_changed, post_delete, post_save

    user_model = get_user_model()
    for signal in (post_save, post_delete):
        signal.connect(principals_forget, sender=user_model, dispatch_uid=f"principals-{signal}")
        signal.connect(principals_forget, sender=Group, dispatch_uid=f"principals-g-{signal}")
    m2m_changed.connect(
        principals_forget,
        sender=user_model.groups.through,
        dispatch_uid="principals-groups",
    )


def _principal_read(user_id: int) -> Principal | None:
    row = (
        get_user_model()
        .objects.filter(pk=user_id, is_active=True)
        .annotate(in_admin=_group_exists("admin"), in_operator=_group_exists("operator"))
        .values_list("pk", "username", "is_superuser", "in_admin", "in_operator")
        .first()
    )
    if row is None:
        return None
    pk, username, superuser, in_admin, in_operator = row
    role = Role.ADMIN if superuser or in_admin else Role.OPERATOR if in_operator else Role.VIEWER
    return Principal(user_id=pk, username=username, role=role)


def role_of(user: AbstractBaseUser | AnonymousUser | None) -> Role | None:
    """The role of a Django user (None for anonymous or inactive users)."""
    if user is None or not user.is_authenticated or not getattr(user, "is_active", False):
        return None
    principal = principal_for(user.pk)
    return principal.role if principal else None


def require_role(request: HttpRequest, role: Role) -> Principal:
    """The request's principal when it has ``role`` or higher; 401/403 otherwise."""
    principal = getattr(request, "auth", None)
    if not isinstance(principal, Principal):
        raise AuthenticationFailed("sign in first: send a bearer token or a session cookie")
    if principal.role < role:
        raise PermissionDenied(
            f"this needs the {role.label} role; you are signed in as {principal.role.label}",
            details={"required_role": role.label, "role": principal.role.label},
        )
    return principal


# --- JWT --------------------------------------------------------------------------------


def _key() -> str:
    configured = settings.API_JWT_SECRET
    if configured:
        return configured
    # Derived, 64 hex characters: PyJWT wants an HMAC key of at least 32 bytes.
    return hashlib.sha256(f"quant-jwt:{settings.SECRET_KEY}".encode()).hexdigest()


def token_issue(principal: Principal, kind: str, *, now: float | None = None) -> str:
    now = time.time() if now is None else now
    lifetime = (
        settings.API_ACCESS_TOKEN_SECONDS if kind == ACCESS else settings.API_REFRESH_TOKEN_SECONDS
    )
    claims = {
        "sub": str(principal.user_id),
        "type": kind,
        "iat": int(now),
        "exp": int(now) + lifetime,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, _key(), algorithm=ALGORITHM)


def token_pair(principal: Principal) -> dict[str, Any]:
    return {
        "access_token": token_issue(principal, ACCESS),
        "refresh_token": token_issue(principal, REFRESH),
        "token_type": "bearer",
        "expires_in": settings.API_ACCESS_TOKEN_SECONDS,
        "role": principal.role.label,
        "username": principal.username,
    }


def token_principal(token: str, kind: str) -> Principal:
    """The principal a valid, unexpired token of ``kind`` names; AuthenticationFailed if not."""
    try:
        claims = jwt.decode(
            token, _key(), algorithms=[ALGORITHM], options={"require": ["exp", "sub", "type"]}
        )
    except jwt.ExpiredSignatureError:
        raise AuthenticationFailed(f"the {kind} token has expired") from None
    except jwt.PyJWTError as error:
        raise AuthenticationFailed(f"the {kind} token is not valid: {error}") from None
    if claims.get("type") != kind:
        raise AuthenticationFailed(f"this is a {claims.get('type')} token, not a {kind} token")
    try:
        user_id = int(claims["sub"])
    except (TypeError, ValueError):
        raise AuthenticationFailed(f"the {kind} token names no user") from None
    principal = principal_for(user_id)
    if principal is None:
        raise AuthenticationFailed("the token's user no longer exists or is disabled")
    return principal


class BearerAuth(HttpBearer):
    """``Authorization: Bearer <access token>``."""

    openapi_scheme = "bearer"

    def authenticate(self, request: HttpRequest, token: str) -> Principal | None:
        return token_principal(token, ACCESS)


class DashboardSessionAuth(SessionAuth):
    """The dashboard's Django session (CSRF-checked on unsafe methods by ninja)."""

    def authenticate(self, request: HttpRequest, key: str | None) -> Principal | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        return principal_for(user.pk)


API_AUTH = [BearerAuth(), DashboardSessionAuth()]


# --- Rate limits ------------------------------------------------------------------------


def client_ip(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR") or "unknown")


class WindowThrottle(BaseThrottle):
    """A fixed one-minute window counted with one atomic cache increment per request.

    The cache is Redis when ``REDIS_URL`` is set (shared by every web process), the local
    memory cache otherwise (the embedded single-process default)."""

    scope = "ip"

    def __init__(self, setting: str, *, window: int = 60) -> None:
        self.setting = setting
        self.window = window

    def ident(self, request: HttpRequest) -> str | None:
        return client_ip(request)

    def allow_request(self, request: HttpRequest) -> bool:
        limit = int(getattr(settings, self.setting))
        ident = self.ident(request)
        if ident is None or limit <= 0:
            return True
        now = time.time()
        window = int(now // self.window)
        key = f"api-throttle:{self.scope}:{ident}:{window}"
        if cache.add(key, 1, self.window + 5):
            count = 1
        else:
            try:
                count = cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.add(key, 1, self.window + 5)
                count = 1
        return count <= limit

    def wait(self) -> float | None:
        """Seconds until the current window closes (the Retry-After header)."""
        return float(max(1, math.ceil(self.window - time.time() % self.window)))


class UserThrottle(WindowThrottle):
    scope = "user"

    def ident(self, request: HttpRequest) -> str | None:
        principal = getattr(request, "auth", None)
        return str(principal.user_id) if isinstance(principal, Principal) else None


def api_throttles() -> list[BaseThrottle]:
    return [
        WindowThrottle("API_RATE_LIMIT_IP_PER_MINUTE"),
        UserThrottle("API_RATE_LIMIT_USER_PER_MINUTE"),
    ]


def login_throttle() -> WindowThrottle:
    throttle = WindowThrottle("API_RATE_LIMIT_LOGIN_PER_MINUTE")
    throttle.scope = "login"
    return throttle


def acting_user(principal: Principal) -> Any:
    """The Django user behind a principal, for services that record who acted."""
    return get_user_model().objects.get(pk=principal.user_id)


def username(user: Any) -> str | None:
    """A user's name for an API answer (None for no user: the system acted)."""
    return user.get_username() if user is not None else None

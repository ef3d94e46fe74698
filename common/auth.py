"""Who may call the API and the dashboard: roles, JWT tokens and request-rate limits.

Roles rise viewer < operator < admin. A superuser or a member of the ``admin`` group is an
admin, a member of ``operator`` an operator; every other active user is a viewer. The API
takes a bearer access token (``POST /v1/auth/login``) or the dashboard's session cookie (with
the CSRF header on writes); both resolve to the same :class:`Principal`.

Tokens belong to a sign-in's token family (``common.models``): a refresh token is good for one
refresh (rotation), a second use revokes the family (reuse detection), and logout, a password
change or deactivation revoke the families of the user, access tokens included. Password
guessing on every sign-in is throttled by django-axes per username and client address
(settings: ``AXES_*``); its lockout answer is :func:`login_lockout_response`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import threading
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any

import jwt
import structlog
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils import timezone
from ninja.security import HttpBearer, SessionAuth
from ninja.throttling import BaseThrottle

from quant.errors import ApplicationError

log = structlog.get_logger(__name__)

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
    # The token family of the bearer token the request came with (None: a session)
    token_family: str | None = None

    def __str__(self) -> str:  # ninja's throttles key on str(request.auth)
        return f"user:{self.user_id}"


def _group_exists(name: str) -> Exists:
    groups = get_user_model().groups.through
    return Exists(groups.objects.filter(user_id=OuterRef("pk"), group__name=name))


_principals: dict[tuple[int, str | None], tuple[float, Principal | None]] = {}
_principals_lock = threading.Lock()


def principal_for(user_id: int, *, family: str | None = None) -> Principal | None:
    """The active user's principal; None when gone or disabled, or when ``family`` (a token's
    sign-in) is given and revoked.

    Read in one statement and kept ``API_PRINCIPAL_CACHE_SECONDS`` (default 5) in this process:
    a change of the user, its groups or its tokens made here clears it at once, one made by
    another process is seen within that time."""
    ttl = settings.API_PRINCIPAL_CACHE_SECONDS
    now = time.monotonic()
    key = (user_id, family)
    cached = _principals.get(key)
    if ttl > 0 and cached is not None and cached[0] > now:
        return cached[1]
    principal = _principal_read(user_id, family)
    if ttl > 0:
        with _principals_lock:
            if len(_principals) > 10_000:
                _principals.clear()
            _principals[key] = (now + ttl, principal)
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


def _principal_read(user_id: int, family: str | None = None) -> Principal | None:
    from common.models import TokenFamily

    users = get_user_model().objects.filter(pk=user_id, is_active=True)
    if family is not None:
        live = TokenFamily.objects.filter(pk=family, user_id=OuterRef("pk"), revoked_at=None)
        users = users.filter(Exists(live))  # the same statement: no extra query per request
    row = (
        users.annotate(in_admin=_group_exists("admin"), in_operator=_group_exists("operator"))
        .values_list("pk", "username", "is_superuser", "in_admin", "in_operator")
        .first()
    )
    if row is None:
        return None
    pk, username, superuser, in_admin, in_operator = row
    role = Role.ADMIN if superuser or in_admin else Role.OPERATOR if in_operator else Role.VIEWER
    return Principal(user_id=pk, username=username, role=role, token_family=family)


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


def token_issue(
    principal: Principal, kind: str, *, now: float | None = None, family: str | None = None
) -> str:
    """A signed token of ``kind`` in the token family ``family`` (a new sign-in's family when
    None). A refresh token is recorded: it is good for one refresh."""
    from common.models import RefreshToken

    now = time.time() if now is None else now
    lifetime = (
        settings.API_ACCESS_TOKEN_SECONDS if kind == ACCESS else settings.API_REFRESH_TOKEN_SECONDS
    )
    if family is None:
        family = _family_start(principal)
    jti = uuid.uuid4()
    if kind == REFRESH:
        RefreshToken.objects.create(
            jti=jti,
            family_id=family,
            issued_at=_aware(now),
            expires_at=_aware(int(now) + lifetime),
        )
    claims = {
        "sub": str(principal.user_id),
        "type": kind,
        "iat": int(now),
        "exp": int(now) + lifetime,
        "jti": jti.hex,
        "fam": str(family),
    }
    return jwt.encode(claims, _key(), algorithm=ALGORITHM)


def _family_start(principal: Principal) -> str:
    """A new sign-in of the principal's user; its principal is known (the user's, with this
    family), so it is cached like one just read."""
    from common.models import TokenFamily

    family = str(TokenFamily.objects.create(user_id=principal.user_id).pk)
    ttl = settings.API_PRINCIPAL_CACHE_SECONDS
    if ttl > 0:
        with _principals_lock:
            _principals[(principal.user_id, family)] = (
                time.monotonic() + ttl,
                replace(principal, token_family=family),
            )
    return family


def _aware(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def token_pair(principal: Principal, *, family: str | None = None) -> dict[str, Any]:
    """An access and a refresh token of one family (a new sign-in when ``family`` is None)."""
    if family is None:
        family = _family_start(principal)
    return {
        "access_token": token_issue(principal, ACCESS, family=family),
        "refresh_token": token_issue(principal, REFRESH, family=family),
        "token_type": "bearer",
        "expires_in": settings.API_ACCESS_TOKEN_SECONDS,
        "role": principal.role.label,
        "username": principal.username,
    }


def _claims(token: str, kind: str) -> tuple[int, str, dict[str, Any]]:
    """The user id, the token family and the claims of a valid, unexpired token of ``kind``."""
    try:
        claims = jwt.decode(
            token,
            _key(),
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub", "type", "jti", "fam"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthenticationFailed(f"the {kind} token has expired") from None
    except jwt.MissingRequiredClaimError as error:
        raise AuthenticationFailed(
            f"the {kind} token is from an older sign-in ({error}): sign in again"
        ) from None
    except jwt.PyJWTError as error:
        raise AuthenticationFailed(f"the {kind} token is not valid: {error}") from None
    if claims.get("type") != kind:
        raise AuthenticationFailed(f"this is a {claims.get('type')} token, not a {kind} token")
    try:
        user_id = int(claims["sub"])
        family = str(uuid.UUID(str(claims["fam"])))
        uuid.UUID(str(claims["jti"]))
    except (TypeError, ValueError):
        raise AuthenticationFailed(f"the {kind} token names no user or sign-in") from None
    return user_id, family, claims


def token_principal(token: str, kind: str = ACCESS) -> Principal:
    """The principal a valid, unexpired token of ``kind`` names, while its user is active and
    its sign-in not revoked; AuthenticationFailed if not. A refresh token is only checked here,
    not used: :func:`token_refresh` uses it."""
    from common.models import RefreshToken

    user_id, family, claims = _claims(token, kind)
    principal = principal_for(user_id, family=family)
    if principal is None:
        raise AuthenticationFailed(
            "the token's user no longer exists or is disabled, or its sign-in was revoked "
            "(logout, password change or a reused refresh token): sign in again"
        )
    if (
        kind == REFRESH
        and not RefreshToken.objects.filter(
            jti=claims["jti"], family_id=uuid.UUID(family), used_at=None
        ).exists()
    ):
        raise AuthenticationFailed("the refresh token was already used: sign in again")
    return principal


def token_refresh(token: str) -> dict[str, Any]:
    """Use a refresh token once: a new pair in the same family. A token used before revokes its
    whole family (whoever refreshed first, the holder or a thief, is signed out) and is
    refused; so is a token of a revoked family or of a user no longer active."""
    from common.models import RefreshToken

    user_id, family, claims = _claims(token, REFRESH)
    reused = False
    with transaction.atomic():
        row = (
            RefreshToken.objects.select_for_update()
            .select_related("family")
            .filter(jti=claims["jti"], family_id=uuid.UUID(family), family__user_id=user_id)
            .first()
        )
        if row is None:
            raise AuthenticationFailed("the refresh token is not known: sign in again")
        if row.family.revoked_at is not None:
            raise AuthenticationFailed(
                f"the refresh token's sign-in was revoked ({row.family.revoked_reason}): "
                "sign in again"
            )
        if row.used_at is not None:
            reused = True
            tokens_revoke(family=family, reason="refresh token reused")
        else:
            principal = principal_for(user_id, family=family)
            if principal is None:
                raise AuthenticationFailed("the token's user no longer exists or is disabled")
            row.used_at = timezone.now()
            row.save(update_fields=["used_at"])
            pair = token_pair(principal, family=family)
    if reused:
        log.warning("auth.refresh_token_reused", user_id=user_id, family=family)
        raise AuthenticationFailed(
            "this refresh token was already used: every token of its sign-in is revoked; "
            "sign in again"
        )
    return pair


def tokens_revoke(*, reason: str, user_id: int | None = None, family: str | None = None) -> int:
    """Revoke the token families of ``user_id`` (all of them) or one ``family``: their refresh
    and access tokens stop working (in other web processes within
    ``API_PRINCIPAL_CACHE_SECONDS``). The number of families revoked."""
    from common.models import TokenFamily

    if user_id is None and family is None:
        raise ValueError("name a user or a token family")
    families = TokenFamily.objects.filter(revoked_at=None)
    if user_id is not None:
        families = families.filter(user_id=user_id)
    if family is not None:
        families = families.filter(pk=family)
    count = families.update(revoked_at=timezone.now(), revoked_reason=reason[:40])
    principals_forget()
    transaction.on_commit(principals_forget)  # a read racing the commit must not stay cached
    if count:
        log.info("auth.tokens_revoked", user_id=user_id, family=family, reason=reason, count=count)
    return count


def token_families_purge(*, now: datetime | None = None) -> int:
    """Delete the sign-ins none of whose refresh tokens can still be used (every one expired):
    nothing can refresh them, and their access tokens, issued with those refresh tokens and
    shorter-lived, have expired too. The number of families deleted (beat: daily)."""
    from common.models import RefreshToken, TokenFamily

    now = now or timezone.now()
    usable = RefreshToken.objects.filter(family=OuterRef("pk"), expires_at__gt=now)
    old = now - timedelta(seconds=settings.API_ACCESS_TOKEN_SECONDS)
    stale = TokenFamily.objects.filter(~Exists(usable), created_at__lt=old)
    count = stale.delete()[1].get(TokenFamily._meta.label, 0)
    if count:
        log.info("auth.token_families_purged", count=count)
    return count


def tokens_logout(principal: Principal, refresh_token: str | None = None) -> int:
    """``POST /v1/auth/logout``: revoke the caller's sign-in (the family of its bearer token)
    and that of ``refresh_token`` when it is the caller's; the number of families revoked."""
    count = 0
    if principal.token_family is not None:
        count += tokens_revoke(family=principal.token_family, reason="logout")
    if refresh_token:
        user_id, family, _ = _claims(refresh_token, REFRESH)
        if user_id != principal.user_id:
            raise PermissionDenied("this refresh token belongs to another user")
        count += tokens_revoke(family=family, reason="logout")
    return count


def _user_tokens_pre_save(sender: Any, instance: Any, update_fields: Any = None, **_: Any) -> None:
    """Note a password change or a deactivation of a stored user (revoked after the save)."""
    instance._tokens_revoke_reason = None
    if instance.pk is None:
        return
    if update_fields is not None and not {"password", "is_active"} & set(update_fields):
        return  # e.g. last_login on every sign-in: no query
    old = sender.objects.filter(pk=instance.pk).values("password", "is_active").first()
    if old is None:
        return
    if old["password"] != instance.password:
        instance._tokens_revoke_reason = "password changed"
    elif old["is_active"] != instance.is_active:
        instance._tokens_revoke_reason = "deactivated" if old["is_active"] else "reactivated"


def _user_tokens_post_save(sender: Any, instance: Any, created: bool = False, **_: Any) -> None:
    reason = getattr(instance, "_tokens_revoke_reason", None)
    if reason:
        instance._tokens_revoke_reason = None
        tokens_revoke(user_id=instance.pk, reason=reason)


def connect_token_revocation() -> None:
    """A password change or (de/re)activation revokes every token of the user
    (``CommonConfig.ready``). A bulk ``update()`` sends no signal: a deactivation made so still
    stops every token (only active users' tokens are accepted), a password changed so does not
    revoke them."""
    from django.db.models.signals import post_save, pre_save

    user_model = get_user_model()
    pre_save.connect(_user_tokens_pre_save, sender=user_model, dispatch_uid="tokens-pre-save")
    post_save.connect(_user_tokens_post_save, sender=user_model, dispatch_uid="tokens-post-save")


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
    """The client's address: the TCP peer, or behind ``TRUSTED_PROXY_COUNT`` proxies the address
    the outermost trusted proxy saw (counted from the right of X-Forwarded-For, so a client
    cannot choose it). Every limit keyed on the client (API throttles, sign-in lockouts, the
    kill-switch code back-off) uses this one answer."""
    return address_of_client(request) or "unknown"


def address_of_client(request: HttpRequest) -> str | None:
    """:func:`client_ip`, None when unknown (django-axes' ``AXES_CLIENT_IP_CALLABLE``)."""
    proxies = int(getattr(settings, "TRUSTED_PROXY_COUNT", 0) or 0)
    if proxies > 0:
        hops = [h.strip() for h in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
        hops = [h for h in hops if h]
        if len(hops) >= proxies and _is_address(hops[-proxies]):
            return hops[-proxies]
    peer = request.META.get("REMOTE_ADDR")
    return str(peer) if peer and _is_address(str(peer)) else None


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def login_lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """django-axes' answer to a sign-in refused for too many failures (``AXES_LOCKOUT_CALLABLE``):
    429 with Retry-After, as the API's error envelope under ``/v1/``, a page otherwise."""
    seconds = login_cooloff_seconds()
    if request.path.startswith("/v1/"):
        if original_response is not None and original_response.status_code == 429:
            return original_response  # the login endpoint answered it already
        response: HttpResponse = JsonResponse(
            {
                "error": {
                    "code": RateLimited.code,
                    "message": login_lockout_message(),
                    "details": {"retry_after": seconds},
                }
            },
            status=429,
        )
    else:
        html = render_to_string(
            "dashboard/signin_locked.html",
            {"minutes": max(1, math.ceil(seconds / 60))},
            request=request,
        )
        response = HttpResponse(html, status=429)
    response["Retry-After"] = str(seconds)
    return response


def login_cooloff_seconds() -> int:
    cooloff = settings.AXES_COOLOFF_TIME
    return max(1, int(cooloff.total_seconds())) if cooloff is not None else 3600


def login_lockout_message() -> str:
    minutes = max(1, math.ceil(login_cooloff_seconds() / 60))
    return (
        "too many failed sign-ins for this user from this address: try again in "
        f"{minutes} min (each further failure starts the wait again)"
    )


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

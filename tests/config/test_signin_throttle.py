"""Password guessing is throttled on every sign-in: the API, the dashboard and the admin.

Regression (issue 17): ``/signin`` and ``/admin/login/`` took 30 wrong passwords in 8 s and then
the right one; the API's login limit counted every attempt per address, so other people's
failures behind the same proxy refused a correct password. Now failures are counted per
username and address together (django-axes): ``AXES_FAILURE_LIMIT`` lock that pair out for the
cool-off, renewed by every failure during it; other users and other addresses are untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from tests.support.api import PASSWORD, make_user

pytestmark = pytest.mark.django_db

GUESSER, OWNER, NEIGHBOUR = "10.9.0.66", "10.9.0.7", "10.9.0.8"
LIMIT = 5


@pytest.fixture(autouse=True)
def _clean(settings: Any) -> None:
    cache.clear()
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


def api_login(username: str, password: str, address: str, **extra: Any) -> Any:
    return Client().post(
        "/v1/auth/login",
        {"username": username, "password": password},
        content_type="application/json",
        REMOTE_ADDR=address,
        **extra,
    )


def dashboard_login(username: str, password: str, address: str, **extra: Any) -> Any:
    return Client().post(
        "/signin", {"username": username, "password": password}, REMOTE_ADDR=address, **extra
    )


def admin_login(username: str, password: str, address: str, **extra: Any) -> Any:
    return Client().post(
        "/admin/login/",
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=address,
        **extra,
    )


def signed_in(response: Any) -> bool:
    if response.status_code == 200 and response.get("Content-Type", "").startswith("applic"):
        return bool(response.json()["data"]["access_token"])
    return response.status_code == 302  # the dashboard and the admin redirect on success


def staff_user() -> User:
    user = make_user("admin")
    user.is_staff = user.is_superuser = True
    user.save()
    return user


LOGINS: dict[str, Callable[..., Any]] = {
    "api": api_login,
    "dashboard": dashboard_login,
    "admin": admin_login,
}


@pytest.mark.parametrize("interface", LOGINS)
def test_guessing_locks_the_account_for_the_guessing_address_only(interface: str) -> None:
    login = LOGINS[interface]
    victim = staff_user()
    bystander = make_user("viewer", "bystander")
    statuses = [login(victim.username, f"guess-{i}", GUESSER).status_code for i in range(LIMIT)]
    assert statuses[-1] == 429, statuses  # the failure that reaches the limit is refused
    assert all(s != 429 for s in statuses[:-1]), statuses

    locked = login(victim.username, PASSWORD, GUESSER)
    assert locked.status_code == 429 and not signed_in(locked)  # the right password waits too
    assert int(locked["Retry-After"]) == 15 * 60
    if interface == "api":
        error = locked.json()["error"]
        assert error["code"] == "rate_limited" and "try again in 15 min" in error["message"]
    else:
        assert b"Too many failed sign-ins" in locked.content

    # Neither the owner elsewhere nor another user at the guesser's address is locked out.
    assert signed_in(login(victim.username, PASSWORD, OWNER))
    assert signed_in(login(bystander.username, PASSWORD, GUESSER)) or interface == "admin"


@pytest.mark.parametrize("interface", LOGINS)
def test_the_lock_ends_after_the_cool_off_and_each_failure_restarts_it(interface: str) -> None:
    from axes.models import AccessAttempt

    login = LOGINS[interface]
    victim = staff_user()
    for i in range(LIMIT):
        login(victim.username, f"guess-{i}", GUESSER)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=10))
    assert login(victim.username, "guess-again", GUESSER).status_code == 429  # back-off
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=10))
    # 20 minutes after the first lock, but only 10 after the last failure: still locked
    assert login(victim.username, PASSWORD, GUESSER).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert signed_in(login(victim.username, PASSWORD, GUESSER))
    # a success clears the count: one more mistake is not a lock
    assert login(victim.username, "typo", GUESSER).status_code != 429


def test_api_login_is_not_refused_for_other_peoples_failures() -> None:
    """Regression: 20 attempts a minute per address, successes and failures of anyone alike,
    refused a correct password with 429 behind a shared address."""
    victim = make_user("operator")
    for i in range(25):  # others behind the same address mistype, or guess other accounts
        response = api_login(f"someone-{i % 5}", "wrong", GUESSER)
        assert response.status_code in (401, 429)
    assert signed_in(api_login(victim.username, PASSWORD, GUESSER))


@pytest.mark.parametrize("interface", LOGINS)
def test_behind_a_proxy_one_client_locks_no_one_else(interface: str, settings: Any) -> None:
    """With TRUSTED_PROXY_COUNT the address is the one the proxy saw, not the proxy's: a
    guesser behind the proxy locks neither the account's owner nor anyone else there."""
    settings.TRUSTED_PROXY_COUNT = 1
    login = LOGINS[interface]
    victim = staff_user()
    proxy = "10.0.0.1"
    for i in range(LIMIT + 2):
        login(victim.username, f"guess-{i}", proxy, HTTP_X_FORWARDED_FOR=GUESSER)
    assert login(victim.username, PASSWORD, proxy, HTTP_X_FORWARDED_FOR=GUESSER).status_code == 429
    # the guesser cannot pick another address: the proxy appends the one it saw
    spoofed = login(
        victim.username, PASSWORD, proxy, HTTP_X_FORWARDED_FOR=f"{NEIGHBOUR}, {GUESSER}"
    )
    assert spoofed.status_code == 429
    assert signed_in(login(victim.username, PASSWORD, proxy, HTTP_X_FORWARDED_FOR=OWNER))


def test_without_a_trusted_proxy_the_forwarded_header_is_ignored() -> None:
    victim = make_user("viewer")
    for i in range(LIMIT):
        api_login(victim.username, f"guess-{i}", GUESSER, HTTP_X_FORWARDED_FOR=f"10.7.7.{i}")
    assert (
        api_login(victim.username, PASSWORD, GUESSER, HTTP_X_FORWARDED_FOR=OWNER).status_code == 429
    )

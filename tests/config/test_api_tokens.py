"""Refresh tokens rotate on use, a reused one revokes its sign-in, and logout, a password change
or deactivation revoke every token of the user (issue 17: a refresh token survived a password
change for 7 days)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection
from django.test import Client

from common.auth import principals_forget
from tests.support.api import PASSWORD, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clean(settings: Any) -> None:
    cache.clear()
    principals_forget()
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only


def login(username: str, password: str = PASSWORD) -> dict[str, Any]:
    response = Client().post(
        "/v1/auth/login",
        {"username": username, "password": password},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    tokens: dict[str, Any] = response.json()["data"]
    return tokens


def refresh(token: str) -> Any:
    return Client().post(
        "/v1/auth/refresh", {"refresh_token": token}, content_type="application/json"
    )


def me(access: str) -> int:
    return Client(headers={"Authorization": f"Bearer {access}"}).get("/v1/auth/me").status_code


def test_a_refresh_token_is_good_for_one_refresh_and_reuse_revokes_the_sign_in() -> None:
    make_user("viewer")
    first = login("viewer_user")
    second = refresh(first["refresh_token"])
    assert second.status_code == 200
    rotated = second.json()["data"]
    assert rotated["refresh_token"] != first["refresh_token"]
    assert me(rotated["access_token"]) == 200

    reused = refresh(first["refresh_token"])  # a stolen copy, or the original after a thief
    assert reused.status_code == 401
    assert "already used" in reused.json()["error"]["message"]
    # the whole sign-in is gone: the rotated refresh token and every access token
    assert refresh(rotated["refresh_token"]).status_code == 401
    assert me(rotated["access_token"]) == 401
    assert me(first["access_token"]) == 401
    from common.models import TokenFamily

    [family] = TokenFamily.objects.all()
    assert family.revoked_reason == "refresh token reused"


def test_reuse_revokes_only_its_own_sign_in() -> None:
    make_user("viewer")
    laptop, phone = login("viewer_user"), login("viewer_user")
    refresh(laptop["refresh_token"])
    assert refresh(laptop["refresh_token"]).status_code == 401
    assert me(phone["access_token"]) == 200
    assert refresh(phone["refresh_token"]).status_code == 200


def test_a_password_change_revokes_every_token() -> None:
    user = make_user("operator")
    tokens = login("operator_user")
    user.set_password("a brand new passphrase")
    user.save()
    assert refresh(tokens["refresh_token"]).status_code == 401
    assert me(tokens["access_token"]) == 401
    assert me(login("operator_user", "a brand new passphrase")["access_token"]) == 200


def test_a_password_change_through_the_admin_revokes_every_token() -> None:
    admin = make_user("admin", "root")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    user = make_user("viewer")
    tokens = login("viewer_user")
    client = Client()
    client.force_login(admin)
    page = client.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"password1": "another fine passphrase", "password2": "another fine passphrase"},
    )
    assert page.status_code == 302, page.content[:500]
    assert refresh(tokens["refresh_token"]).status_code == 401
    assert me(tokens["access_token"]) == 401


def test_deactivation_revokes_every_token_for_good() -> None:
    user = make_user("viewer")
    tokens = login("viewer_user")
    user.is_active = False
    user.save()
    assert me(tokens["access_token"]) == 401
    assert refresh(tokens["refresh_token"]).status_code == 401
    user.is_active = True
    user.save()
    # reactivation does not bring the old sign-in back
    assert refresh(tokens["refresh_token"]).status_code == 401
    assert me(tokens["access_token"]) == 401


def test_deactivation_by_a_bulk_update_still_stops_every_token() -> None:
    user = make_user("viewer")
    tokens = login("viewer_user")
    User.objects.filter(pk=user.pk).update(is_active=False)
    principals_forget()  # another process: seen within API_PRINCIPAL_CACHE_SECONDS
    assert me(tokens["access_token"]) == 401
    assert refresh(tokens["refresh_token"]).status_code == 401


def test_signing_in_again_keeps_the_other_sign_ins() -> None:
    """last_login is saved on every sign-in: that is no password change."""
    make_user("viewer")
    first = login("viewer_user")
    login("viewer_user")
    assert me(first["access_token"]) == 200
    assert refresh(first["refresh_token"]).status_code == 200


def test_logout_revokes_the_sign_in_of_the_token() -> None:
    make_user("viewer")
    tokens, other = login("viewer_user"), login("viewer_user")
    client = Client(headers={"Authorization": f"Bearer {tokens['access_token']}"})
    response = client.post("/v1/auth/logout", {}, content_type="application/json")
    assert response.status_code == 200 and response.json()["data"] == {"revoked": 1}
    assert me(tokens["access_token"]) == 401
    assert refresh(tokens["refresh_token"]).status_code == 401
    assert me(other["access_token"]) == 200  # another device stays signed in


def test_logout_can_name_a_refresh_token_but_only_ones_own() -> None:
    make_user("viewer")
    make_user("viewer", "mallory")
    mine, theirs = login("viewer_user"), login("mallory")
    client = Client(headers={"Authorization": f"Bearer {mine['access_token']}"})
    refused = client.post(
        "/v1/auth/logout",
        {"refresh_token": theirs["refresh_token"]},
        content_type="application/json",
    )
    assert refused.status_code == 403
    assert refresh(theirs["refresh_token"]).status_code == 200


def test_logout_needs_a_signed_in_caller() -> None:
    response = Client().post("/v1/auth/logout", {}, content_type="application/json")
    assert response.status_code == 401


def test_logout_with_the_dashboard_session_ends_it() -> None:
    user = make_user("viewer")
    client = Client()
    client.force_login(user)
    assert client.post("/v1/auth/logout", {}, content_type="application/json").status_code == 200
    assert client.get("/v1/auth/me").status_code == 401


def test_a_token_without_a_sign_in_is_refused() -> None:
    """Tokens made before sign-ins were recorded (no ``fam`` claim) must sign in again."""
    import time

    import jwt

    from common.auth import ALGORITHM, _key

    user = make_user("viewer")
    now = int(time.time())
    claims = {"sub": str(user.pk), "type": "refresh", "iat": now, "exp": now + 600, "jti": "a" * 32}
    old = jwt.encode(claims, _key(), algorithm=ALGORITHM)
    response = refresh(old)
    assert response.status_code == 401 and "sign in again" in response.json()["error"]["message"]
    old_access = jwt.encode({**claims, "type": "access"}, _key(), algorithm=ALGORITHM)
    assert me(old_access) == 401


@pytest.mark.django_db(transaction=True)
def test_two_refreshes_racing_with_one_token_cannot_both_win(on_postgres: bool) -> None:
    if not on_postgres:
        pytest.skip("row locks need PostgreSQL")
    make_user("viewer")
    token = login("viewer_user")["refresh_token"]
    statuses: list[int] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        barrier.wait()
        try:
            statuses.append(refresh(token).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(statuses) == [200, 401]
    from common.models import RefreshToken

    assert RefreshToken.objects.filter(used_at__isnull=True, family__revoked_at=None).count() == 0


def test_sign_ins_whose_refresh_tokens_all_expired_are_purged() -> None:
    from datetime import timedelta

    from django.utils import timezone

    from common.auth import token_families_purge
    from common.models import RefreshToken, TokenFamily
    from common.tasks import purge_token_families

    make_user("viewer", "ann")
    old, current = login("ann"), login("ann")
    refresh(current["refresh_token"])  # the current sign-in has a used and an unused token
    assert TokenFamily.objects.count() == 2
    week_ago = timezone.now() - timedelta(days=8)
    first = RefreshToken.objects.order_by("issued_at").first()
    assert first is not None
    TokenFamily.objects.filter(pk=first.family_id).update(created_at=week_ago)
    RefreshToken.objects.filter(family_id=first.family_id).update(
        issued_at=week_ago, expires_at=week_ago + timedelta(days=7)
    )

    assert purge_token_families() == 1  # the beat's task
    assert token_families_purge() == 0
    assert not TokenFamily.objects.filter(pk=first.family_id).exists()
    assert TokenFamily.objects.count() == 1  # the current sign-in stays, used token and all
    assert refresh(old["refresh_token"]).status_code == 401  # its sign-in is gone
    assert me(current["access_token"]) == 200

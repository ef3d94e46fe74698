"""The kill switch's admin code: checked before any lock, with a back-off and an alert for
repeated wrong codes, through the service, the API and the admin (issue 17: each wrong code
held the kill-switch lock through a PBKDF2 check and stalled every order)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.hashers import check_password as real_check_password
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from common.auth import RateLimited
from monitoring.models import Alert
from quant.errors import PermissionDeniedError, ValidationError
from risk import services
from risk.locks import kill_switch_lock
from risk.models import KillSwitchEvent, KillSwitchState
from risk.selectors import killswitch_global
from risk.services import admin_code_set, killswitch_activate, killswitch_deactivate

pytestmark = pytest.mark.django_db

CODE = "correct-horse-battery"
SWITCHES = "/admin/risk/killswitchstate/"


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(services, "_clock", clock, raising=False)
    return clock


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every admin code the service hashes (a PBKDF2 check each)."""
    seen: list[str] = []

    def counting(code: str, encoded: str, *args: Any, **kwargs: Any) -> bool:
        seen.append(code)
        return real_check_password(code, encoded, *args, **kwargs)

    monkeypatch.setattr(services, "check_password", counting)
    return seen


@pytest.fixture(autouse=True)
def _policy(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only
    settings.KILL_SWITCH_CODE_FREE_FAILURES = 3
    settings.KILL_SWITCH_CODE_BACKOFF_SECONDS = 5.0
    settings.KILL_SWITCH_CODE_BACKOFF_MAX_SECONDS = 900.0
    settings.KILL_SWITCH_CODE_ALERT_AFTER = 5


@pytest.fixture
def active(django_capture_on_commit_callbacks: Any) -> Iterator[KillSwitchState]:
    admin_code_set(code=CODE)
    with django_capture_on_commit_callbacks(execute=True):
        yield killswitch_activate(reason="halt")


def is_active() -> bool:
    return KillSwitchState.objects.get(pk=killswitch_global().pk).active


# --- no lock while the code is checked --------------------------------------------------------


def test_a_wrong_code_is_checked_without_the_kill_switch_lock(
    monkeypatch: pytest.MonkeyPatch, on_postgres: bool
) -> None:
    if not on_postgres:
        pytest.skip("the kill-switch lock is a PostgreSQL advisory lock")
    admin_code_set(code=CODE)
    # active without killswitch_activate: its lock would stay held to the end of the test
    KillSwitchState.objects.filter(pk=killswitch_global().pk).update(
        active=True, reason="halt", activated_at=timezone.now()
    )
    held: list[int] = []

    def check_and_look(code: str, encoded: str, *args: Any, **kwargs: Any) -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            )
            held.append(cursor.fetchone()[0])
        return real_check_password(code, encoded, *args, **kwargs)

    monkeypatch.setattr(services, "check_password", check_and_look)
    with pytest.raises(PermissionDeniedError):
        killswitch_deactivate(admin_code="a-wrong-guess-1")
    assert held == [0]
    killswitch_deactivate(admin_code=CODE)
    assert held == [0, 0]  # the right code too is checked before the lock
    assert not is_active()


@pytest.mark.django_db(transaction=True)
def test_orders_are_not_stalled_while_a_guess_is_hashed(
    monkeypatch: pytest.MonkeyPatch, on_postgres: bool
) -> None:
    """An order's check takes the kill-switch lock shared; a guess in progress must not hold
    it exclusively (before: every wrong code stalled every order for a PBKDF2 check)."""
    if not on_postgres:
        pytest.skip("the kill-switch lock is a PostgreSQL advisory lock")
    admin_code_set(code=CODE)
    killswitch_activate(reason="halt")
    hashing, release = threading.Event(), threading.Event()

    def slow_check(code: str, encoded: str, *args: Any, **kwargs: Any) -> bool:
        hashing.set()
        release.wait(10)
        return real_check_password(code, encoded, *args, **kwargs)

    monkeypatch.setattr(services, "check_password", slow_check)
    outcome: list[BaseException] = []

    def guesser() -> None:
        try:
            killswitch_deactivate(admin_code="a-wrong-guess-2")
        except BaseException as error:
            outcome.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=guesser)
    thread.start()
    try:
        assert hashing.wait(10)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '300ms'")
            kill_switch_lock(shared=True)  # what every order's check takes: no wait
    finally:
        release.set()
        thread.join(15)
    assert len(outcome) == 1 and isinstance(outcome[0], PermissionDeniedError)
    assert KillSwitchState.objects.get(scope="global").active


# --- back-off and alert (the service) -----------------------------------------------------


def test_after_a_few_wrong_codes_attempts_wait_a_doubling_back_off(
    active: KillSwitchState, clock: Clock, hashes: list[str], bob: Any
) -> None:
    for i in range(3):
        with pytest.raises(PermissionDeniedError, match="Wrong admin code"):
            killswitch_deactivate(admin_code=f"guess-number-{i}", user=bob)
    with pytest.raises(RateLimited) as waited:
        killswitch_deactivate(admin_code=CODE, user=bob)  # even the right code waits
    assert waited.value.retry_after == 5 and len(hashes) == 3  # nothing hashed
    assert is_active()

    clock.now += 6
    with pytest.raises(PermissionDeniedError):
        killswitch_deactivate(admin_code="guess-number-3", user=bob)
    with pytest.raises(RateLimited) as waited:
        killswitch_deactivate(admin_code="guess-number-4", user=bob)
    assert waited.value.retry_after == 10  # doubled

    clock.now += 11
    assert not killswitch_deactivate(admin_code=CODE, user=bob).active
    # a success clears the count
    killswitch_activate(reason="again")
    with pytest.raises(PermissionDeniedError):
        killswitch_deactivate(admin_code="one-more-typo", user=bob)


def test_the_back_off_is_capped(active: KillSwitchState, clock: Clock, settings: Any) -> None:
    settings.KILL_SWITCH_CODE_BACKOFF_MAX_SECONDS = 60.0
    for i in range(12):
        clock.now += 3600
        with pytest.raises(PermissionDeniedError):
            killswitch_deactivate(admin_code=f"guess-number-{i}")
    with pytest.raises(RateLimited) as waited:
        killswitch_deactivate(admin_code=CODE)
    assert waited.value.retry_after == 60


def test_one_users_wrong_codes_do_not_hold_back_another(
    active: KillSwitchState, clock: Clock, alice: Any, bob: Any
) -> None:
    for i in range(4):
        with pytest.raises((PermissionDeniedError, RateLimited)):
            killswitch_deactivate(admin_code=f"guess-number-{i}", user=bob)
    assert not killswitch_deactivate(admin_code=CODE, user=alice).active


def test_the_same_client_is_held_back_whichever_account_it_uses(
    active: KillSwitchState, clock: Clock, alice: Any, bob: Any
) -> None:
    for i in range(3):
        with pytest.raises(PermissionDeniedError):
            killswitch_deactivate(admin_code=f"guess-number-{i}", user=bob, client="10.6.6.6")
    with pytest.raises(RateLimited):
        killswitch_deactivate(admin_code=CODE, user=alice, client="10.6.6.6")
    assert not killswitch_deactivate(admin_code=CODE, user=alice, client="10.1.1.1").active


def test_repeated_wrong_codes_raise_an_alert(
    active: KillSwitchState, clock: Clock, settings: Any, bob: Any
) -> None:
    settings.KILL_SWITCH_CODE_FREE_FAILURES = 100
    settings.KILL_SWITCH_CODE_ALERT_AFTER = 3
    for i in range(2):
        with pytest.raises(PermissionDeniedError):
            killswitch_deactivate(admin_code=f"guess-number-{i}", user=bob, client="10.6.6.6")
    assert not Alert.objects.filter(key="kill-switch:admin-code-guessing").exists()
    with pytest.raises(PermissionDeniedError):
        killswitch_deactivate(admin_code="guess-number-2", user=bob, client="10.6.6.6")
    [alert] = Alert.objects.filter(key="kill-switch:admin-code-guessing")
    assert alert.severity == "critical" and alert.source == "risk.kill_switch"
    assert "3 wrong kill-switch admin codes in a row by bob from 10.6.6.6" in alert.message
    with pytest.raises(PermissionDeniedError):
        killswitch_deactivate(admin_code="guess-number-3", user=bob, client="10.6.6.6")
    alert.refresh_from_db()
    assert alert.count == 2 and "4 wrong" in alert.message


def test_refusals_are_still_audited(active: KillSwitchState, bob: Any) -> None:
    with pytest.raises(PermissionDeniedError):
        killswitch_deactivate(admin_code="a-wrong-guess-9", user=bob)
    [refused] = KillSwitchEvent.objects.filter(action="deactivation_refused")
    assert refused.user == bob and refused.scope == "global"
    assert refused.details == {"was_active": True}


def test_no_stored_code_is_no_guess(
    django_capture_on_commit_callbacks: Any, clock: Clock, hashes: list[str]
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        killswitch_activate(reason="halt")
    for _ in range(5):
        with pytest.raises(PermissionDeniedError, match="No admin code is set"):
            killswitch_deactivate(admin_code=CODE)
    admin_code_set(code=CODE)
    assert not killswitch_deactivate(admin_code=CODE).active


@pytest.mark.parametrize(("code", "ok"), [("x" * 11, False), ("x" * 12, True)])
def test_the_admin_code_has_at_least_12_characters(code: str, ok: bool) -> None:
    if ok:
        admin_code_set(code=code)
    else:
        with pytest.raises(ValidationError, match="at least 12 characters"):
            admin_code_set(code=code)


# --- the same rule through the API and the admin ------------------------------------------


def test_the_api_backs_off_with_429_and_retry_after(
    active: KillSwitchState, clock: Clock, hashes: list[str]
) -> None:
    from tests.support.api import client_for, make_user

    client = client_for(make_user("admin"))

    def deactivate(code: str) -> Any:
        return client.post(
            "/v1/controls/kill-switch",
            {"action": "deactivate", "admin_code": code},
            content_type="application/json",
        )

    assert [deactivate(f"guess-number-{i}").status_code for i in range(3)] == [403] * 3
    waited = deactivate(CODE)
    assert waited.status_code == 429 and waited["Retry-After"] == "5"
    assert waited.json()["error"]["code"] == "rate_limited"
    assert len(hashes) == 3 and is_active()
    clock.now += 6
    assert deactivate(CODE).status_code == 200 and not is_active()


def test_the_admin_action_backs_off_too(
    active: KillSwitchState, admin_client: Client, clock: Clock, hashes: list[str]
) -> None:
    pk = killswitch_global().pk

    def deactivate(code: str) -> bytes:
        page = admin_client.post(
            SWITCHES,
            {"action": "deactivate", "_selected_action": [pk], "apply": "1", "admin_code": code},
            follow=True,
        )
        return bytes(page.content)

    for i in range(3):
        assert b"Wrong admin code" in deactivate(f"guess-number-{i}")
    assert b"Too many wrong admin codes: try again in 5 s" in deactivate(CODE)
    assert len(hashes) == 3 and is_active()
    clock.now += 6
    assert b"is off" in deactivate(CODE) and not is_active()

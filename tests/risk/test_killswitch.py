"""The kill switch: persisted state, audit, admin code, alerts and the after-commit signal."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.hashers import check_password
from django.db import IntegrityError, connections, transaction

from monitoring.models import Alert
from quant.errors import NotFoundError, PermissionDeniedError, ValidationError
from quant.risk.health import EquityPoint
from research.models import Strategy
from risk.models import (
    AdminCode,
    KillSwitchAction,
    KillSwitchEvent,
    KillSwitchMode,
    KillSwitchState,
)
from risk.selectors import (
    kill_switch_blocking,
    killswitch_get,
    killswitch_global,
    killswitch_status,
)
from risk.services import (
    admin_code_set,
    circuit_breaker_run,
    killswitch_activate,
    killswitch_deactivate,
)
from risk.signals import kill_switch_activated
from tests.conftest import service_unavailable
from tests.risk.conftest import make_strategy

pytestmark = pytest.mark.django_db

CODE = "correct-horse-battery"


@pytest.fixture(autouse=True)
def no_alert_delivery(monkeypatch: pytest.MonkeyPatch) -> None:
    """Alerts are written; handing them to the Celery broker is monitoring's business."""
    monkeypatch.setattr(
        "monitoring.services._enqueue_delivery", lambda *a, **k: None, raising=False
    )


@pytest.fixture
def received() -> Iterator[list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        calls.append({"sender": sender, **kwargs})

    kill_switch_activated.connect(receiver, dispatch_uid="test-receiver")
    yield calls
    kill_switch_activated.disconnect(dispatch_uid="test-receiver")


def events(action: str | None = None) -> list[KillSwitchEvent]:
    rows = KillSwitchEvent.objects.order_by("id")
    return list(rows.filter(action=action) if action else rows)


def fresh_global() -> KillSwitchState:
    """The global state as a new process would see it: a fresh query, nothing cached."""
    return KillSwitchState.objects.get(scope="global")


def test_the_global_switch_exists_and_is_off_after_migrating() -> None:
    state = fresh_global()
    assert not state.active and state.strategy is None
    assert killswitch_status() == [state]
    assert kill_switch_blocking(strategy_id=None) is None


def test_activation_is_persisted_and_audited(
    alice: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        killswitch_activate(reason="runaway strategy", user=alice)

    state = fresh_global()
    assert state.active and state.reason == "runaway strategy"
    assert (state.mode, state.source, state.activated_by) == ("freeze", "manual", alice)
    assert state.activated_at is not None
    assert kill_switch_blocking(strategy_id=None) == state
    [event] = events()
    assert (event.action, event.scope, event.user, event.reason) == (
        "activated",
        "global",
        alice,
        "runaway strategy",
    )


def test_the_signal_is_sent_only_after_the_commit(
    received: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        killswitch_activate(reason="halt", flatten=True)
        assert received == []  # still inside the transaction
        assert fresh_global().active
    [call] = received
    assert call["sender"] is KillSwitchState
    assert call["state"].scope == "global" and call["state"].active
    assert call["flatten"] is True


def test_a_rolled_back_activation_sends_nothing(received: list[dict[str, Any]]) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        killswitch_activate(reason="halt")
        raise RuntimeError("the caller failed")
    assert received == []
    assert not fresh_global().active
    assert events() == []


def test_activation_raises_one_critical_alert_per_scope(
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        killswitch_activate(reason="first")
    with django_capture_on_commit_callbacks(execute=True):
        killswitch_activate(reason="second")
    [alert] = Alert.objects.filter(key="kill-switch:global")
    assert alert.severity == "critical" and alert.source == "risk.kill_switch"
    assert alert.count == 2  # grouped
    assert alert.message == "Kill switch activated (global): second"


def test_a_failing_receiver_is_reported_not_raised(
    django_capture_on_commit_callbacks: Any,
) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker down")

    kill_switch_activated.connect(broken, dispatch_uid="test-broken")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            killswitch_activate(reason="halt")
    finally:
        kill_switch_activated.disconnect(dispatch_uid="test-broken")
    assert fresh_global().active
    response = Alert.objects.get(key="kill-switch:global:response")
    assert "broker down" in response.message and response.severity == "critical"


def test_activating_twice_updates_the_reason_and_keeps_flatten(
    alice: Any, bob: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = killswitch_activate(reason="one", flatten=True, user=alice)
    with django_capture_on_commit_callbacks(execute=True):
        killswitch_activate(reason="two", user=bob)
    state = fresh_global()
    assert state.reason == "two" and state.mode == KillSwitchMode.FLATTEN
    assert (state.activated_at, state.activated_by) == (first.activated_at, alice)
    assert [e.details["repeat"] for e in events("activated")] == [False, True]
    assert KillSwitchState.objects.count() == 1


def test_a_strategy_switch_blocks_only_that_strategy(
    strategy: Strategy, django_capture_on_commit_callbacks: Any
) -> None:
    other = make_strategy("other")
    with django_capture_on_commit_callbacks(execute=True):
        killswitch_activate(scope=strategy.name, reason="bad fills")
        killswitch_activate(scope=str(strategy.pk), reason="bad fills again")
    blocking = kill_switch_blocking(strategy_id=strategy.pk)
    assert blocking is not None and blocking.strategy == strategy
    assert blocking.reason == "bad fills again" and blocking.label == "strategy sma_spy"
    assert kill_switch_blocking(strategy_id=other.pk) is None
    assert kill_switch_blocking(strategy_id=None) is None
    assert [s.label for s in killswitch_status()] == ["global", "strategy sma_spy"]

    with django_capture_on_commit_callbacks(execute=True):
        killswitch_activate(reason="everything")
    found = kill_switch_blocking(strategy_id=strategy.pk)
    assert found is not None and found.scope == "global"  # global first


def test_activation_needs_a_reason_and_a_known_scope() -> None:
    with pytest.raises(ValidationError, match="reason"):
        killswitch_activate(reason="  ")
    with pytest.raises(NotFoundError, match="no strategy 'nope'"):
        killswitch_activate(scope="nope", reason="x")
    with pytest.raises(ValidationError, match="source"):
        killswitch_activate(reason="x", source="robot")
    assert events() == []


# --- deactivation and the admin code ---------------------------------------------------------


@pytest.fixture
def active(django_capture_on_commit_callbacks: Any) -> KillSwitchState:
    with django_capture_on_commit_callbacks(execute=True):
        return killswitch_activate(reason="halt")


def test_deactivation_without_a_stored_code_is_refused_and_audited(active: KillSwitchState) -> None:
    with pytest.raises(PermissionDeniedError, match="No admin code is set"):
        killswitch_deactivate(admin_code=CODE)
    assert fresh_global().active
    [refused] = events("deactivation_refused")
    assert refused.details == {"was_active": True}


@pytest.mark.parametrize("code", ["wrong-code-123", ""])
def test_a_wrong_or_missing_code_is_refused_and_audited(
    active: KillSwitchState, bob: Any, code: str
) -> None:
    admin_code_set(code=CODE)
    with pytest.raises(PermissionDeniedError, match="Wrong admin code"):
        killswitch_deactivate(admin_code=code, user=bob)
    assert fresh_global().active
    [refused] = events("deactivation_refused")
    assert refused.user == bob and refused.scope == "global"


def test_the_right_code_deactivates(active: KillSwitchState, bob: Any) -> None:
    admin_code_set(code=CODE)
    state = killswitch_deactivate(admin_code=CODE, user=bob)
    assert not state.active and not fresh_global().active
    assert fresh_global().deactivated_by == bob
    assert [e.action for e in events()] == ["activated", "deactivated"]
    assert kill_switch_blocking(strategy_id=None) is None


def test_deactivating_an_inactive_switch_changes_nothing() -> None:
    admin_code_set(code=CODE)
    assert not killswitch_deactivate(admin_code=CODE).active
    assert events() == []


def test_deactivating_a_strategy_leaves_the_global_switch(
    strategy: Strategy, django_capture_on_commit_callbacks: Any
) -> None:
    admin_code_set(code=CODE)
    with django_capture_on_commit_callbacks(execute=True):
        killswitch_activate(reason="all")
        killswitch_activate(scope=strategy.pk, reason="one")
    killswitch_deactivate(admin_code=CODE, scope=strategy.name)
    strategy_state = killswitch_get(scope=strategy.name)
    assert strategy_state is not None and not strategy_state.active
    assert fresh_global().active


def test_only_the_hash_of_the_admin_code_is_stored() -> None:
    row = admin_code_set(code=CODE)
    stored = AdminCode.objects.get(pk=row.pk)
    assert CODE not in stored.code_hash and stored.code_hash.count("$") >= 2
    assert check_password(CODE, stored.code_hash)
    assert [f.name for f in AdminCode._meta.get_fields()] == [
        "id",
        "code_hash",
        "set_by",
        "created_at",
    ]


def test_a_short_admin_code_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 12 characters"):
        admin_code_set(code="12345678901")
    assert not AdminCode.objects.exists()


def test_the_newest_admin_code_counts(active: KillSwitchState) -> None:
    admin_code_set(code=CODE)
    admin_code_set(code="a-new-code-456")
    with pytest.raises(PermissionDeniedError):
        killswitch_deactivate(admin_code=CODE)
    assert not killswitch_deactivate(admin_code="a-new-code-456").active


def test_the_database_refuses_a_plain_admin_code() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        AdminCode.objects.create(code_hash="plain-code-123")


def test_events_are_append_only(active: KillSwitchState) -> None:
    [event] = events()
    event.reason = "rewritten"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()


def test_an_active_state_needs_a_reason_in_the_database() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        KillSwitchState.objects.filter(scope="global").update(active=True, reason="")


def test_a_second_global_row_is_refused() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        KillSwitchState.objects.create(scope="global")


# --- the circuit breaker acting ---------------------------------------------------------------


def curve(*values: int) -> list[EquityPoint]:
    start = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
    return [EquityPoint(start + timedelta(days=i), Decimal(v)) for i, v in enumerate(values)]


def test_the_circuit_breaker_activates_the_kill_switch_once(
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        calm = circuit_breaker_run(equity_points=curve(100_000, 95_000, 90_000))
    assert not calm.kill and not fresh_global().active

    with django_capture_on_commit_callbacks(execute=True):
        reading = circuit_breaker_run(equity_points=curve(100_000, 95_000, 89_000))
        circuit_breaker_run(equity_points=curve(100_000, 95_000, 88_000))
    assert reading.kill
    state = fresh_global()
    assert state.active and state.source == "auto"
    assert state.reason.startswith(
        "Total drawdown 11.00% > 10.00% from high water mark $100,000.00"
    )
    assert len(events(KillSwitchAction.ACTIVATED)) == 1


# --- concurrency on PostgreSQL: no order is accepted after an activation commits ----------------


class Worker(threading.Thread):
    """Runs ``target`` on its own database connection, keeping its result or error."""

    def __init__(self, target: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.target = target
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.target()
        except BaseException as error:
            self.error = error
        finally:
            connections.close_all()


def require_postgres() -> None:
    """Skip (fail in CI) off PostgreSQL; then make sure the global row exists, committed (a
    transactional test's flush removes the migration's row)."""
    if connections["default"].vendor != "postgresql":
        service_unavailable("row locks are tested on PostgreSQL (SQLite has one writer at a time)")
    killswitch_global()


def wait_until_blocked(worker: Worker, timeout: float = 10) -> bool:
    """True once another session of this database waits on a lock, the kill-switch advisory
    lock or a row's (and ``worker`` runs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and worker.is_alive():
        with connections["default"].cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] >= 1:
                return True
        time.sleep(0.02)
    return False


def check(strategy_id: int | None = None, *, lock: bool = True) -> KillSwitchState | None:
    with transaction.atomic():
        return kill_switch_blocking(strategy_id=strategy_id, lock=lock)


def activation_holding_its_lock(
    activated: threading.Event, release: threading.Event
) -> Callable[[], KillSwitchState]:
    def activate() -> KillSwitchState:
        with transaction.atomic():
            state = killswitch_activate(reason="halt now")
            activated.set()
            release.wait(10)  # the transaction stays open, the kill-switch lock held
        return state

    return activate


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_check_waits_for_an_activation_to_commit_and_then_sees_it() -> None:
    require_postgres()
    activated, release = threading.Event(), threading.Event()
    activator = Worker(activation_holding_its_lock(activated, release))
    activator.start()
    assert activated.wait(10)

    checker = Worker(check)
    checker.start()
    assert wait_until_blocked(checker), "the check must wait for the activation's transaction"
    assert checker.is_alive()

    release.set()
    activator.join(10)
    checker.join(10)
    assert activator.error is None and checker.error is None
    assert checker.result is not None and checker.result.active
    assert checker.result.reason == "halt now"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_without_the_lock_a_check_reads_past_an_uncommitted_activation() -> None:
    """The control for the test above: the shared lock is what makes the check wait."""
    require_postgres()
    activated, release = threading.Event(), threading.Event()
    activator = Worker(activation_holding_its_lock(activated, release))
    activator.start()
    assert activated.wait(10)
    try:
        checker = Worker(lambda: check(lock=False))
        checker.start()
        checker.join(5)
        assert not checker.is_alive() and checker.error is None
        assert checker.result is None  # it would have approved an order
    finally:
        release.set()
        activator.join(10)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_activation_waits_for_a_check_in_progress() -> None:
    require_postgres()
    strategy = make_strategy()
    checked, release = threading.Event(), threading.Event()

    def check_then_place_order() -> KillSwitchState | None:
        with transaction.atomic():
            found = kill_switch_blocking(strategy_id=strategy.pk, lock=True)
            checked.set()
            release.wait(10)  # the order row would be written here, in the same transaction
        return found

    checker = Worker(check_then_place_order)
    checker.start()
    assert checked.wait(10)
    activator = Worker(lambda: killswitch_activate(reason="halt"))
    activator.start()
    assert wait_until_blocked(activator), "the activation must wait for the check's transaction"
    assert activator.is_alive()

    release.set()
    checker.join(10)
    activator.join(10)
    assert checker.error is None and activator.error is None
    assert checker.result is None  # approved before the switch: the order commits first
    assert fresh_global().active  # and the activation's cancel step then sees that order


@pytest.mark.django_db(transaction=True)
def test_a_locking_check_outside_a_transaction_is_a_mistake() -> None:
    with pytest.raises(RuntimeError, match=r"inside transaction\.atomic"):
        kill_switch_blocking(strategy_id=None, lock=True)
    assert kill_switch_blocking(strategy_id=None) is None

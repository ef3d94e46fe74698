"""``manage.py killswitch``: output, errors, exit codes, and state that outlives the process."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from research.models import Strategy
from risk.models import AdminCode, KillSwitchEvent, KillSwitchState
from risk.services import admin_code_set, killswitch_activate
from tests.support.fixtures import current_database_url

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
CODE = "correct-horse-battery"


@pytest.fixture(autouse=True)
def no_alert_delivery(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "monitoring.services._enqueue_delivery", lambda *a, **k: None, raising=False
    )


def run(*args: str) -> str:
    out = StringIO()
    call_command("killswitch", *args, stdout=out)
    return out.getvalue()


def global_state() -> KillSwitchState:
    return KillSwitchState.objects.get(scope="global")


def test_status_lists_the_global_switch() -> None:
    assert run("status") == "global: inactive\n"


def test_activate_then_status(alice: Any, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        out = run("--user", "alice", "activate", "--reason", "fat finger storm")
    assert out.startswith("ACTIVATED: global: ACTIVE (freeze) since ")
    assert out.endswith(" by alice: fat finger storm\n")
    state = global_state()
    assert state.active and state.activated_by == alice
    assert "global: ACTIVE (freeze)" in run("status")


def test_activate_a_strategy_with_flatten(
    strategy: Strategy, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        out = run("activate", "--scope", strategy.name, "--reason", "bad data", "--flatten")
    assert "strategy sma_spy: ACTIVE (flatten)" in out and out.endswith(" by manual: bad data\n")
    assert not global_state().active
    assert run("status").splitlines() == [
        "global: inactive",
        next(line for line in out.splitlines()).removeprefix("ACTIVATED: "),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("activate", "--scope", "nope", "--reason", "x"), "scope: no strategy 'nope'"),
        (("activate", "--reason", " "), "reason: say why"),
        (("activate",), "the following arguments are required: --reason"),
        (("deactivate", "--admin-code", CODE), "No admin code is set"),
        (("set-admin-code", "--code", "short"), "code: use at least 12 characters"),
        (("--user", "nobody", "status"), "--user: no user 'nobody'"),
        (("explode",), "invalid choice: 'explode'"),
    ],
)
def test_bad_input_is_a_clear_command_error(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert not global_state().active


def test_deactivate_needs_the_right_code(django_capture_on_commit_callbacks: Any) -> None:
    run("set-admin-code", "--code", CODE)
    with django_capture_on_commit_callbacks(execute=True):
        killswitch_activate(reason="halt")
    with pytest.raises(CommandError, match="Wrong admin code"):
        run("deactivate", "--admin-code", "not-the-code")
    assert global_state().active
    assert run("deactivate", "--admin-code", CODE) == "Deactivated: global: inactive\n"
    assert run("deactivate", "--admin-code", CODE) == "Was not active: global: inactive\n"
    actions = list(KillSwitchEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["activated", "deactivation_refused", "deactivated"]


def test_set_admin_code_stores_only_a_hash() -> None:
    assert run("set-admin-code", "--code", CODE) == "Admin code stored (as a hash).\n"
    assert CODE not in AdminCode.objects.get().code_hash


def test_a_code_left_out_without_a_terminal_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", StringIO(""))
    with pytest.raises(CommandError, match="give the code as an option"):
        run("set-admin-code")


# --- a separate process: exit codes, and the state read from the database -------------------


def manage(*args: str) -> subprocess.CompletedProcess[str]:
    """``manage.py killswitch ...`` in a new process on this test database."""
    env = {**os.environ, "DATABASE_URL": current_database_url()}
    return subprocess.run(
        [sys.executable, "manage.py", "killswitch", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.django_db(transaction=True)
def test_the_state_survives_into_a_new_process_and_failures_exit_non_zero() -> None:
    connection: Any = connections["default"]
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("an in-memory SQLite database is invisible to another process")
    admin_code_set(code=CODE)
    killswitch_activate(reason="persisted halt")  # committed: transactional test

    status = manage("status")
    assert status.returncode == 0, status.stderr
    assert "global: ACTIVE (freeze)" in status.stdout and "persisted halt" in status.stdout

    refused = manage("deactivate", "--admin-code", "wrong-code-999")
    assert refused.returncode == 1
    assert "CommandError: Wrong admin code" in refused.stderr
    assert KillSwitchState.objects.get(scope="global").active

    done = manage("deactivate", "--admin-code", CODE)
    assert done.returncode == 0, done.stderr
    assert not KillSwitchState.objects.get(scope="global").active

    usage = manage("activate")
    assert usage.returncode != 0 and "--reason" in usage.stderr

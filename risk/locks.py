"""The kill-switch lock: every kill-switch writer holds it exclusively and every locking check
holds it shared (one advisory lock for all scopes: activations are rare, checks are many)."""

from __future__ import annotations

from common.db.locks import advisory_lock_statement, advisory_xact_lock

KILL_SWITCH_LOCK_NAMESPACE = 0x4B_53_57  # "KSW"
KILL_SWITCH_LOCK_KEY = "kill_switch"


def kill_switch_lock_statement() -> tuple[str, list[object]]:
    """The statement that takes the kill-switch lock shared, to send ahead of reads with
    ``prepared.fetch_together``."""
    return advisory_lock_statement(KILL_SWITCH_LOCK_NAMESPACE, KILL_SWITCH_LOCK_KEY, shared=True)


def kill_switch_lock(*, shared: bool) -> None:
    """Take the kill-switch lock until the transaction ends (PostgreSQL; SQLite: nothing)."""
    advisory_xact_lock(KILL_SWITCH_LOCK_NAMESPACE, KILL_SWITCH_LOCK_KEY, shared=shared)

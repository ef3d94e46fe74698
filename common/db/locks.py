"""Transaction-scoped advisory locks on PostgreSQL (a no-op on SQLite).

An advisory lock lives in the server's lock table only: taking one writes nothing, assigns no
transaction id and so costs the COMMIT no WAL flush, unlike ``SELECT ... FOR SHARE``, which
marks the row on disk (and, with several sharers at once, allocates a MultiXact). A
transaction-scoped lock is released when its transaction commits or rolls back.

Locks are named by two 32-bit integers: a namespace per use (``namespace``) and
``hashtext(key)``. Waiting for one shows in ``pg_stat_activity`` as ``wait_event_type =
'Lock'``, ``wait_event = 'advisory'``.

SQLite has no advisory locks; it runs one writing transaction at a time, which callers rely on
there instead.
"""

from __future__ import annotations

from typing import Any

from django.db import connection

from common.db import prepared


def advisory_lock_statement(
    namespace: int, key: str, *, shared: bool = False
) -> tuple[str, list[Any]]:
    """The statement that takes the lock (for ``prepared.fetch_together``) and its values."""
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    return f"SELECT {function}(%s, hashtext(%s))", [namespace, key]


def advisory_xact_lock(namespace: int, key: str, *, shared: bool = False) -> None:
    """Wait for and take the lock ``(namespace, key)`` until the transaction ends: exclusive,
    or ``shared`` (any number of shared holders, none while an exclusive one holds it)."""
    if connection.vendor != "postgresql":
        return
    if not connection.in_atomic_block:
        raise RuntimeError("a transaction-scoped advisory lock needs transaction.atomic()")
    sql, params = advisory_lock_statement(namespace, key, shared=shared)
    with connection.cursor() as cursor:
        prepared.execute(cursor, sql, params)

"""Hand-written statements on a hot path, prepared once per PostgreSQL connection.

Django sends every statement as text with its values bound client-side, so PostgreSQL parses
and plans it each time. For the risk gateway's reads that work is most of the statement's
cost: parsing and planning its one-row read of eight tables takes ~0.7 ms, executing it ~0.1 ms.
``execute`` sends ``PREPARE`` the first time a connection sees a statement, then
``EXECUTE name(values)``; after five executions PostgreSQL keeps one generic plan, so only
the values are parsed.

- A statement is named by a hash of its text: a different text is a different statement.
- Prepared statements belong to the server session, not to a transaction (one prepared in a
  transaction that rolls back stays); which ones a connection has is tracked per psycopg
  connection object, so a reconnect starts empty.
- SQLite has no PREPARE, and Python's sqlite3 module caches compiled statements itself: the
  text runs as is.
- A pooler in transaction mode (PgBouncer) hands one client several server sessions, and
  SQL-level prepared statements do not survive that: set ``DB_PREPARED_STATEMENTS=false``.
"""

from __future__ import annotations

import functools
import hashlib
import re
import weakref
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import connection

_PLACEHOLDER = re.compile(r"%s")
_prepared: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def execute(cursor: Any, sql: str, params: Sequence[Any] = ()) -> None:
    """Run ``sql`` (``%s`` placeholders, one per value) with ``params`` on ``cursor`` (a cursor
    of ``django.db.connection``), prepared on PostgreSQL unless the setting turns it off."""
    cursor.execute(*_executable(cursor, sql, params))


def _executable(cursor: Any, sql: str, params: Sequence[Any]) -> tuple[str, Sequence[Any]]:
    """What to send for ``sql``: ``EXECUTE name(%s, ...)`` once the connection has prepared
    it (this prepares it the first time), or the text itself."""
    if connection.vendor != "postgresql" or not settings.DB_PREPARED_STATEMENTS:
        return sql, params
    name = statement_name(sql)
    session = connection.connection  # the psycopg connection the cursor came from
    known = _prepared.setdefault(session, set())
    if name not in known:
        cursor.execute(f"PREPARE {name} AS {_numbered(sql, len(params))}")
        known.add(name)
    if params:
        return f"EXECUTE {name}({', '.join(['%s'] * len(params))})", params
    return f"EXECUTE {name}", params


@functools.lru_cache(maxsize=512)
def statement_name(sql: str) -> str:
    return "q_" + hashlib.blake2b(sql.encode(), digest_size=10).hexdigest()


def prepared_on_this_connection() -> frozenset[str]:
    """The names prepared on the current PostgreSQL connection (for tests and diagnostics)."""
    if connection.connection is None:
        return frozenset()
    return frozenset(_prepared.get(connection.connection, ()))


def _numbered(sql: str, count: int) -> str:
    """``%s`` → ``$1``, ``$2``… (the statement must hold no other ``%``)."""
    if "%%" in sql or sql.count("%") != sql.count("%s"):
        raise ValueError("a prepared statement may hold no '%' other than its placeholders")
    numbers = iter(range(1, count + 1))
    try:
        numbered = _PLACEHOLDER.sub(lambda _: f"${next(numbers)}", sql)
    except StopIteration:
        raise ValueError(f"more placeholders than the {count} values given") from None
    if next(numbers, None) is not None:
        raise ValueError(f"fewer placeholders than the {count} values given")
    return numbered


def fetch_together(
    statements: Sequence[tuple[str, Sequence[Any]]],
) -> list[list[tuple[Any, ...]]]:
    """The rows of each statement (prepared as ``execute`` does), in order.

    On PostgreSQL they are sent as one query string: Django binds values on the client
    (psycopg's ``ClientCursor``), so the string goes by the simple query protocol, the server
    runs the statements one after the other, each with its own snapshot as usual, and the
    client waits for one answer. (A psycopg pipeline does the same in one round trip too, but
    costs more on the client.) A database configured with ``server_side_binding`` cannot take
    several statements at once, so there, as on SQLite, they run one by one.
    """
    if len(statements) == 1 or not _several_at_once():
        results = []
        with connection.cursor() as cursor:
            for sql, params in statements:
                execute(cursor, sql, params)
                results.append(list(cursor.fetchall()))
        return results
    with connection.cursor() as cursor:
        texts: list[str] = []
        values: list[Any] = []
        for sql, params in statements:
            text, bound = _executable(cursor, sql, params)
            texts.append(text)
            values.extend(bound)
        cursor.execute("; ".join(texts), values)
        results = [list(cursor.fetchall())]
        while cursor.nextset():
            results.append(list(cursor.fetchall()))
    if len(results) != len(statements):  # a statement text holding a ';' of its own
        raise ValueError(f"{len(statements)} statements sent, {len(results)} results back")
    return results


def _several_at_once() -> bool:
    return connection.vendor == "postgresql" and not connection.settings_dict.get(
        "OPTIONS", {}
    ).get("server_side_binding", False)

"""``common.db.prepared``: hand-written statements prepared once per PostgreSQL connection."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from common.db import prepared
from common.db.prepared import _numbered, prepared_on_this_connection, statement_name

SQL = "SELECT %s::int + %s::int, %s::text"


def run(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        prepared.execute(cursor, sql, params)
        return list(cursor.fetchall())


def sent(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"].split(" ", 1)[0] for q in queries.captured_queries]


@pytest.fixture
def postgres(on_postgres: bool) -> None:
    if not on_postgres:
        pytest.skip("PREPARE is PostgreSQL's; SQLite runs the text as is")


@pytest.mark.django_db(transaction=True)
def test_a_statement_is_prepared_once_per_connection(postgres: None) -> None:
    with CaptureQueriesContext(connection) as queries:
        first = run(SQL, [1, 2, "a"])
        second = run(SQL, [40, 2, "b"])

    assert first == [(3, "a")] and second == [(42, "b")]
    assert sent(queries) == ["PREPARE", "EXECUTE", "EXECUTE"]
    assert statement_name(SQL) in prepared_on_this_connection()

    connection.close()  # a new server session knows no statements
    with CaptureQueriesContext(connection) as queries:
        assert run(SQL, [1, 1, "c"]) == [(2, "c")]

    assert sent(queries) == ["PREPARE", "EXECUTE"]


@pytest.mark.django_db(transaction=True)
def test_a_statement_prepared_in_a_rolled_back_transaction_stays_prepared(
    postgres: None,
) -> None:
    sql = "SELECT %s::int * 2"
    with pytest.raises(RuntimeError), transaction.atomic():
        assert run(sql, [2]) == [(4,)]
        raise RuntimeError("roll back")

    with CaptureQueriesContext(connection) as queries:
        assert run(sql, [5]) == [(10,)]

    assert sent(queries) == ["EXECUTE"]


@pytest.mark.django_db
def test_a_statement_without_values(postgres: None) -> None:
    assert run("SELECT 7", []) == [(7,)]
    assert run("SELECT 7", []) == [(7,)]


@pytest.mark.django_db
def test_the_setting_turns_preparing_off(settings: Any) -> None:
    settings.DB_PREPARED_STATEMENTS = False
    sql = "SELECT %s || 'x'"
    with CaptureQueriesContext(connection) as queries:
        assert run(sql, ["y"]) == [("yx",)]

    assert sent(queries) == ["SELECT"]


def test_placeholders_are_numbered_in_order() -> None:
    assert _numbered("SELECT %s, %s WHERE a = %s", 3) == "SELECT $1, $2 WHERE a = $3"


@pytest.mark.parametrize(
    ("sql", "count", "message"),
    [
        ("SELECT %s", 2, "fewer placeholders"),
        ("SELECT %s, %s", 1, "more placeholders"),
        ("SELECT '100%%', %s", 1, "no '%'"),
        ("SELECT 'a%b', %s", 1, "no '%'"),
    ],
)
def test_a_statement_that_cannot_be_numbered_is_refused(sql: str, count: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _numbered(sql, count)


@pytest.mark.django_db(transaction=True)
def test_statements_fetched_together_are_prepared_and_answered_in_order(postgres: None) -> None:
    connection.close()  # nothing prepared yet on the next session
    first, second = "SELECT %s::int + 1", "SELECT g FROM generate_series(1, %s::int) g"
    with transaction.atomic():
        rows = prepared.fetch_together([(first, [1]), (second, [3])])
        again = prepared.fetch_together([(first, [9]), (second, [1])])

    assert rows == [[(2,)], [(1,), (2,), (3,)]] and again == [[(10,)], [(1,)]]
    assert {statement_name(first), statement_name(second)} <= prepared_on_this_connection()


@pytest.mark.django_db
def test_an_error_in_a_statement_fetched_together_is_raised(postgres: None) -> None:
    from django.db import DatabaseError

    with pytest.raises(DatabaseError), transaction.atomic():
        prepared.fetch_together([("SELECT %s::int", [1]), ("SELECT 1 / %s::int", [0])])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("prepare", [True, False])
def test_statements_fetched_together_go_as_one_query_string(
    postgres: None, settings: Any, prepare: bool
) -> None:
    settings.DB_PREPARED_STATEMENTS = prepare
    hostile = "x'); DROP TABLE django_migrations; --"
    statements: list[tuple[str, list[Any]]] = [
        ("SELECT %s::text", [hostile]),
        ("SELECT g FROM generate_series(1, %s::int) g", [2]),
        ("SELECT 1 WHERE %s::int = 0", [1]),  # no rows is an answer too
    ]
    with transaction.atomic():
        prepared.fetch_together(statements)  # prepares what it needs
        with CaptureQueriesContext(connection) as queries:
            rows = prepared.fetch_together(statements)

    assert rows == [[(hostile,)], [(1,), (2,)], []]  # the values are bound, not spliced in
    assert len(queries.captured_queries) == 1
    assert queries.captured_queries[0]["sql"].count(";") >= 2
    assert connection.introspection.table_names().count("django_migrations") == 1


@pytest.mark.django_db(transaction=True)
def test_a_read_after_a_lock_in_the_same_string_sees_what_the_holder_committed(
    postgres: None,
) -> None:
    """READ COMMITTED takes each statement's snapshot when it starts: a read sent behind a lock
    in one string sees what the lock's holder committed while the read waited."""
    from common.db.locks import advisory_lock_statement, advisory_xact_lock

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS together; CREATE TABLE together (n int)")
    holding, answer = threading.Event(), []

    def holder() -> None:
        with transaction.atomic():
            advisory_xact_lock(1, "together")
            holding.set()
            time.sleep(0.3)
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO together VALUES (7)")
        connection.close()

    def reader() -> None:
        with transaction.atomic():
            answer.extend(
                prepared.fetch_together(
                    [
                        advisory_lock_statement(1, "together", shared=True),
                        ("SELECT count(*) FROM together WHERE n = %s", [7]),
                    ]
                )[1]
            )
        connection.close()

    try:
        first = threading.Thread(target=holder)
        first.start()
        assert holding.wait(5)
        second = threading.Thread(target=reader)
        second.start()
        first.join(5)
        second.join(5)
        assert answer == [(1,)]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS together")

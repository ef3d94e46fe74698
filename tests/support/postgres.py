"""PostgreSQL set-up for the benchmarks (each measures a database of its own)."""

from __future__ import annotations


def database_ensure(url: str) -> None:
    """Create the database a ``postgres://`` URL names when it is missing (connecting to the
    server's ``postgres`` database with the URL's credentials)."""
    import psycopg
    from psycopg import sql

    from quant.settings import _database

    db = _database(url)
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=int(db["PORT"] or 5432),
        user=db["USER"] or None,
        password=db["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]])
        if exists.fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))

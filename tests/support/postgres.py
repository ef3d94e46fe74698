"""PostgreSQL set-up for the benchmarks (each measures a database of its own)."""

from __future__ import annotations


def database_ensure(url: str) -> None:
    """Create the database a ``postgres://`` URL names when it is missing (connecting to the
    server's ``postgres`` database with the URL's credentials)."""
    import psycopg
    from psycopg import sql

    from config.settings import _database

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


def benchmark_django_setup(url: str, *, production: bool = False) -> str:
    """Point Django at a benchmark's own PostgreSQL database (created when missing), set it up
    and migrate; returns the server's version.

    ``production``: DEBUG off as in production (with DEBUG on, Django keeps every SQL
    statement in memory) and a random SECRET_KEY unless one is set.
    """
    import os
    import secrets

    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if production:
        os.environ["DEBUG"] = "false"
        os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    database_ensure(url)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return str(cursor.fetchone()[0])

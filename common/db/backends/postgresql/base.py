"""PostgreSQL engine that uses TimescaleDB when the server has it, plain PostgreSQL otherwise.

django-timescaledb's own engine runs ``CREATE EXTENSION timescaledb`` unconditionally and
fails on a server without the extension. This wrapper probes ``pg_available_extensions``
first; without the extension every schema operation is the stock PostgreSQL one.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql.base import DatabaseWrapper as PostgresWrapper
from django.db.backends.postgresql.schema import DatabaseSchemaEditor
from timescale.db.backends.postgresql.base import DatabaseWrapper as TimescaleWrapper
from timescale.db.backends.postgresql.schema import TimescaleSchemaEditor


class SchemaEditor(TimescaleSchemaEditor):
    """Creates hypertables only when the extension is installed in this database."""

    def _plain(self) -> bool:
        return not self.connection.timescale_enabled

    def create_model(self, model: Any) -> None:
        if self._plain():
            DatabaseSchemaEditor.create_model(self, model)
        else:
            super().create_model(model)

    def add_field(self, model: Any, field: Any) -> None:
        if self._plain():
            DatabaseSchemaEditor.add_field(self, model, field)
        else:
            super().add_field(model, field)

    def alter_field(self, model: Any, old_field: Any, new_field: Any, strict: bool = False) -> None:
        if self._plain():
            DatabaseSchemaEditor.alter_field(self, model, old_field, new_field, strict)
        else:
            super().alter_field(model, old_field, new_field, strict)


class DatabaseWrapper(TimescaleWrapper):
    SchemaEditorClass = SchemaEditor

    def _query_flag(self, sql: str) -> bool:
        with self.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchone() is not None

    @property
    def timescale_available(self) -> bool:
        """The server can install the extension."""
        return self._query_flag("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")

    @property
    def timescale_enabled(self) -> bool:
        """The extension is installed in this database (hypertables and time_bucket work)."""
        return self._query_flag("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")

    def prepare_database(self) -> None:
        PostgresWrapper.prepare_database(self)
        if self.timescale_available:
            with self.cursor() as cursor:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")

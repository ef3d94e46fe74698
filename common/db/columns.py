"""Some of a model's columns for hand-written SQL, read back exactly as the ORM reads them.

For a read on a hot path (the risk gateway runs one per order) the ORM spends several times
longer composing a query than the database spends answering it. ``Columns`` lets such a read be
written once as SQL while staying tied to the model: column names come from the fields, values
pass through the converters the ORM's compiler would apply (SQLite's decimals, timestamps,
booleans), parameters through the fields' ``get_db_prep_value``, and ``instance`` builds the
model object the ORM would (the other fields deferred). SQL that uses it works on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Field, Model

M = TypeVar("M", bound=Model)
Converter = Callable[[Any, Any, Any], Any]


class Columns(Generic[M]):
    """Fields of ``model`` (in the model's field order) for a SELECT list and their values."""

    def __init__(self, model: type[M], *names: str) -> None:
        fields = {f.name: f for f in model._meta.concrete_fields}
        unknown = [n for n in names if n not in fields]
        if unknown:
            raise ValueError(f"{model.__name__} has no concrete field {', '.join(unknown)}")
        self.model = model
        self.fields: tuple[Field[Any, Any], ...] = tuple(
            f for f in model._meta.concrete_fields if f.name in names
        )
        self.names = tuple(f.name for f in self.fields)
        self._attnames = tuple(f.attname for f in self.fields)
        self._converters: dict[str, list[tuple[Any, list[Converter]]] | None] = {}

    def __len__(self) -> int:
        return len(self.fields)

    @property
    def table(self) -> str:
        return connection.ops.quote_name(self.model._meta.db_table)

    def column(self, name: str, alias: str = "") -> str:
        """The quoted column of field ``name`` (``alias.column`` when an alias is given)."""
        field = self.model._meta.get_field(name)
        assert isinstance(field, Field)
        quoted = connection.ops.quote_name(field.column or name)
        return f"{alias}.{quoted}" if alias else quoted

    def select(self, alias: str = "") -> str:
        """The SELECT list of these fields, in order."""
        return ", ".join(self.column(name, alias) for name in self.names)

    def param(self, name: str, value: Any) -> Any:
        """``value`` as a query parameter compared with field ``name`` (SQLite wants datetimes
        as text in UTC, for instance)."""
        field = self.model._meta.get_field(name)
        assert isinstance(field, Field)
        return field.get_db_prep_value(value, connection, prepared=False)

    def values(self, row: Sequence[Any]) -> list[Any]:
        """The fields' values from ``row`` (exactly ``len(self)`` items, in field order)."""
        if len(row) != len(self.fields):
            raise ValueError(f"expected {len(self.fields)} values, got {len(row)}")
        db = connections[DEFAULT_DB_ALIAS]
        converters = self._for_connection(db)
        if converters is None:  # the driver's values are the ORM's (PostgreSQL's decimals)
            return list(row)
        converted = []
        for value, (expression, functions) in zip(row, converters, strict=True):
            for convert in functions:
                value = convert(value, expression, db)
            converted.append(value)
        return converted

    def as_dict(self, row: Sequence[Any]) -> dict[str, Any]:
        return dict(zip(self.names, self.values(row), strict=True))

    def instance(self, row: Sequence[Any]) -> M:
        """The model object the ORM would load from ``row`` (the other fields deferred)."""
        return self.model.from_db(DEFAULT_DB_ALIAS, list(self._attnames), self.values(row))

    def _for_connection(self, db: Any) -> list[tuple[Any, list[Converter]]] | None:
        """Each field's expression and converters on ``db``'s backend; None when no field has
        any."""
        vendor = db.vendor
        if vendor not in self._converters:
            cached = []
            for field in self.fields:
                expression = field.get_col(self.model._meta.db_table)
                converters = db.ops.get_db_converters(expression)
                converters += expression.get_db_converters(db)
                cached.append((expression, converters))
            self._converters[vendor] = cached if any(c for _, c in cached) else None
        return self._converters[vendor]

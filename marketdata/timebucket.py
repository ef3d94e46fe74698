"""``TimeBucket``: floor a timestamp to a fixed-width bucket, in SQL, on every engine.

TimescaleDB: ``time_bucket``; plain PostgreSQL: ``date_bin`` with the same origin
(2000-01-03, a Monday, Timescale's default); SQLite: arithmetic on the Unix time. Buckets
of a day or less start at multiples of their width from midnight UTC on all three.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import DateTimeField, Expression, Func


class TimeBucket(Func):
    output_field = DateTimeField()

    def __init__(self, width: timedelta, expression: str | Expression, **extra: Any) -> None:
        seconds = int(width.total_seconds())
        if seconds <= 0 or seconds != width.total_seconds():
            raise ValueError("bucket width must be a positive whole number of seconds")
        self.seconds = seconds
        super().__init__(expression, **extra)

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        interval = f"INTERVAL '{self.seconds} seconds'"
        if getattr(connection, "timescale_enabled", False):
            template = f"time_bucket({interval}, %(expressions)s)"
        else:
            template = (
                f"date_bin({interval}, %(expressions)s, TIMESTAMPTZ '2000-01-03 00:00:00+00')"
            )
        return self.as_sql(compiler, connection, template=template, **extra_context)

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        s = self.seconds
        # '%%%%s' survives the template's %-formatting and Django's own '%%' → '%' pass.
        template = f"datetime((CAST(strftime('%%%%s', %(expressions)s) AS INTEGER) / {s}) * {s}, 'unixepoch')"
        return self.as_sql(compiler, connection, template=template, **extra_context)

    def as_sql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:  # type: ignore[override]
        if "template" not in extra_context:
            raise NotImplementedError(f"TimeBucket is not available on {connection.vendor}")
        return super().as_sql(compiler, connection, **extra_context)

"""The TimescaleDB path: detected, never assumed. This server has no extension, so the
Timescale branch is checked on the SQL it would send; the plain branch runs for real."""

from __future__ import annotations

import importlib
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection

from marketdata.models import Bar
from marketdata.timebucket import TimeBucket

compression = importlib.import_module("marketdata.migrations.0002_timescale_compression")


class RecordingEditor:
    def __init__(self, *, enabled: bool, vendor: str = "postgresql") -> None:
        self.connection = type("Conn", (), {"vendor": vendor, "timescale_enabled": enabled})()
        self.sql: list[str] = []

    def execute(self, sql: str, params: Any = None) -> None:
        self.sql.append(sql)


@pytest.mark.django_db
def test_plain_postgres_is_detected_and_bars_are_an_ordinary_table(on_postgres: bool) -> None:
    if not on_postgres:
        pytest.skip("PostgreSQL-only check (the suite runs on PostgreSQL via scripts/test.sh)")
    assert connection.timescale_enabled is False  # type: ignore[attr-defined]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexname = %s",
            [Bar._meta.db_table, "bar_unique_instrument_timeframe_ts"],
        )
        (indexdef,) = cursor.fetchone()
    assert "UNIQUE" in indexdef and "(instrument_id, timeframe, ts)" in indexdef


def test_compression_policy_is_applied_only_with_timescale() -> None:
    plain, sqlite, timescale = (
        RecordingEditor(enabled=False),
        RecordingEditor(enabled=False, vendor="sqlite"),
        RecordingEditor(enabled=True),
    )
    for editor in (plain, sqlite, timescale):
        compression.enable_compression(None, editor)
    assert plain.sql == [] and sqlite.sql == []
    assert "timescaledb.compress_segmentby = 'instrument_id, timeframe'" in timescale.sql[0]
    assert "add_compression_policy('marketdata_bar', INTERVAL '30 days'" in timescale.sql[1]
    compression.disable_compression(None, timescale)
    assert "remove_compression_policy" in timescale.sql[-1]


@pytest.mark.django_db
def test_time_bucket_uses_time_bucket_on_timescale_and_date_bin_otherwise(
    monkeypatch: pytest.MonkeyPatch, on_postgres: bool
) -> None:
    if not on_postgres:
        pytest.skip("PostgreSQL-only check")
    query = Bar.objects.annotate(b=TimeBucket(timedelta(minutes=15), "ts")).values("b").query
    assert "date_bin(INTERVAL '900 seconds'" in str(query)
    monkeypatch.setattr(
        "common.db.backends.postgresql.base.DatabaseWrapper.timescale_enabled", True, raising=True
    )
    query = Bar.objects.annotate(b=TimeBucket(timedelta(minutes=15), "ts")).values("b").query
    assert "time_bucket(INTERVAL '900 seconds'" in str(query)

"""On TimescaleDB: compress bar chunks older than 30 days, segmented per instrument/timeframe.

The hypertable itself is created with the table (``Bar.ts`` is a TimescaleDateTimeField and
the engine's schema editor converts the table when the extension is installed). On plain
PostgreSQL and SQLite this migration does nothing.
"""

from django.db import migrations


def enable_compression(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql" or not getattr(connection, "timescale_enabled", False):
        return
    schema_editor.execute(
        "ALTER TABLE marketdata_bar SET (timescaledb.compress, "
        "timescaledb.compress_segmentby = 'instrument_id, timeframe', "
        "timescaledb.compress_orderby = 'ts')"
    )
    schema_editor.execute(
        "SELECT add_compression_policy('marketdata_bar', INTERVAL '30 days', if_not_exists => true)"
    )


def disable_compression(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql" or not getattr(connection, "timescale_enabled", False):
        return
    schema_editor.execute("SELECT remove_compression_policy('marketdata_bar', if_exists => true)")


class Migration(migrations.Migration):
    dependencies = [("marketdata", "0001_initial")]
    operations = [migrations.RunPython(enable_compression, disable_compression)]

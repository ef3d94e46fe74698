"""Cached features of stored bars: computed once per (version, symbol, timeframe, range).

The features of [start, end] are computed from the bars of that range plus enough bars
*before* ``start`` for the definition's warmup, then trimmed to [start, end]. The result is
stored as a Parquet file through Django's storage API with a ``FeatureCacheEntry`` row. An
entry is reused only while the fingerprint of the bars it came from (warmup included) still
matches the database: a corrected or back-filled bar makes it stale, and a new definition
is a new version, hence a different key.

Replacing an entry never leaves a row pointing at a missing file: the new file is written
under a new name first, then the row is updated, and the old file is deleted after commit.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd
import structlog
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from marketdata.domain import Timeframe
from marketdata.selectors import bars_frame
from quant.errors import ValidationError
from quant.features.definitions import (
    FeatureSetDefinition,
    compute_features,
    feature_set_validate,
)
from research.feature_store.bars import OHLCV, bars_span
from research.models import FeatureCacheEntry, FeatureSetVersion

log = structlog.get_logger(__name__)

CacheStatus = Literal["hit", "miss", "stale"]


class CacheCounters:
    """Process-wide hit/miss/stale counts (thread-safe): reuse is observable without timing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {"hit": 0, "miss": 0, "stale": 0}

    def record(self, status: CacheStatus) -> None:
        with self._lock:
            self._counts[status] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


cache_counters = CacheCounters()


@dataclass(frozen=True)
class FeatureLoad:
    """Features of one key and how they were obtained.

    ``status``: ``hit`` read from the cache; ``miss`` computed, no entry existed; ``stale``
    recomputed because the entry's bars changed (or its file was gone).
    """

    frame: pd.DataFrame
    entry: FeatureCacheEntry
    status: CacheStatus


def features_load(
    *,
    version: FeatureSetVersion,
    symbol: str,
    timeframe: Timeframe | str,
    start: datetime,
    end: datetime,
) -> pd.DataFrame:
    """The features of ``symbol``'s stored bars in [start, end] (cached; see ``features_get``)."""
    return features_get(
        version=version, symbol=symbol, timeframe=timeframe, start=start, end=end
    ).frame


def features_get(
    *,
    version: FeatureSetVersion,
    symbol: str,
    timeframe: Timeframe | str,
    start: datetime,
    end: datetime,
) -> FeatureLoad:
    """The features of [start, end] from the cache when still valid, else computed and stored."""
    tf = timeframe if isinstance(timeframe, Timeframe) else Timeframe.parse(timeframe)
    start, end = _aware(start, "start"), _aware(end, "end")
    if end < start:
        raise ValidationError(f"end {end.isoformat()} is before start {start.isoformat()}")
    definition = version_definition(version=version)
    span = bars_span(
        symbol=symbol, timeframe=tf, start=start, end=end, warmup=definition.warmup_bars()
    )
    key: dict[str, Any] = {
        "feature_set_version": version,
        "symbol": symbol,
        "timeframe": tf.value,
        "start": start,
        "end": end,
    }
    entry = FeatureCacheEntry.objects.filter(**key).first()
    if entry is not None and entry.bars_fingerprint == span.fingerprint:
        cached = _read(entry.path)
        if cached is not None:
            now = timezone.now()
            FeatureCacheEntry.objects.filter(pk=entry.pk).update(last_used_at=now)
            entry.last_used_at = now
            return _done(FeatureLoad(cached, entry, "hit"))
    # The fingerprint was taken before the bars are read: if they change in between, the
    # entry is stale at the next load (recomputed), never wrongly fresh.
    bars = bars_frame(symbol=symbol, timeframe=tf, start=span.first, end=end)
    frame = _normalized(compute_features(bars[list(OHLCV)], definition).loc[start:])
    stored = _store(key, frame, span.fingerprint)
    return _done(FeatureLoad(frame, stored, "miss" if entry is None else "stale"))


def version_definition(*, version: FeatureSetVersion) -> FeatureSetDefinition:
    """The stored definition of ``version``, validated again."""
    return feature_set_validate(version.definition, source=f"feature set version {version}")


def feature_cache_entries_delete(*, entries: Iterable[FeatureCacheEntry]) -> int:
    """Delete entries and, once that is committed, their files. Returns the entries deleted."""
    entries = list(entries)
    paths = [e.path for e in entries]
    with transaction.atomic():
        deleted, _ = FeatureCacheEntry.objects.filter(pk__in=[e.pk for e in entries]).delete()
        transaction.on_commit(lambda: _delete_files(paths))
    log.info("feature_cache.deleted", entries=deleted)
    return deleted


def _done(result: FeatureLoad) -> FeatureLoad:
    cache_counters.record(result.status)
    entry = result.entry
    log.info(
        "feature_cache." + result.status,
        entry=entry.pk,
        symbol=entry.symbol,
        timeframe=entry.timeframe,
        rows=entry.rows,
    )
    return result


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise ValidationError(f"{name} {value.isoformat()} has no timezone")
    return value.astimezone(UTC)


def _normalized(frame: pd.DataFrame) -> pd.DataFrame:
    """One form for computed and cached frames: UTC index named ``ts``, string columns."""
    frame = frame.copy()
    frame.index = pd.DatetimeIndex(frame.index).tz_convert(UTC).rename("ts")
    frame.columns = pd.Index([str(c) for c in frame.columns])
    return frame


def _read(path: str) -> pd.DataFrame | None:
    """The cached frame, or None when its file is gone (a concurrent replace, a manual purge)."""
    try:
        with default_storage.open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        log.warning("feature_cache.file_missing", path=path)
        return None
    return _normalized(pd.read_parquet(io.BytesIO(data), engine="pyarrow"))


def _store(key: dict[str, Any], frame: pd.DataFrame, fingerprint: str) -> FeatureCacheEntry:
    """Write the file, then point the key's entry at it (old file deleted after commit)."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, engine="pyarrow")
    name = default_storage.save(_file_name(key, fingerprint), ContentFile(buffer.getvalue()))
    try:
        with transaction.atomic():
            return _point_entry(key, name, frame, fingerprint)
    except BaseException:
        default_storage.delete(name)
        raise


def _point_entry(
    key: dict[str, Any], name: str, frame: pd.DataFrame, fingerprint: str
) -> FeatureCacheEntry:
    values = {
        "bars_fingerprint": fingerprint,
        "path": name,
        "rows": len(frame),
        "columns": list(frame.columns),
        "last_used_at": timezone.now(),
    }
    entry = FeatureCacheEntry.objects.select_for_update().filter(**key).first()
    if entry is None:
        try:
            with transaction.atomic():
                return FeatureCacheEntry.objects.create(**key, **values)
        except IntegrityError:
            # A concurrent load of the same key inserted first; its row is ours to update.
            entry = FeatureCacheEntry.objects.select_for_update().get(**key)
    if entry.bars_fingerprint == fingerprint and default_storage.exists(entry.path):
        # A concurrent load stored the same features first: keep its file, drop ours.
        transaction.on_commit(lambda: _delete_files([name]))
        return entry
    old = entry.path
    for field, value in values.items():
        setattr(entry, field, value)
    entry.save(update_fields=list(values))
    transaction.on_commit(lambda: _delete_files([old]))
    return entry


def _delete_files(paths: Iterable[str]) -> None:
    for path in paths:
        try:
            default_storage.delete(path)
        except OSError as error:  # a leftover file only costs space: never fail the load
            log.warning("feature_cache.delete_failed", path=path, error=str(error))


def _file_name(key: dict[str, Any], fingerprint: str) -> str:
    version: FeatureSetVersion = key["feature_set_version"]
    stamp = "%Y%m%dT%H%M%SZ"
    parts = [
        _slug(key["symbol"]),
        key["timeframe"],
        key["start"].strftime(stamp),
        key["end"].strftime(stamp),
        fingerprint[:12],
    ]
    return (
        f"features/{_slug(version.feature_set.name)}/{version.version[:16]}/"
        + "_".join(parts)
        + ".parquet"
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]+", "-", text).strip("-") or "x"

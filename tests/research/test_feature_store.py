"""Feature cache: features of stored bars, computed with warmup before ``start``, stored as
Parquet through the storage API and reused while the bars they came from are unchanged."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from django.core.files.storage import default_storage
from django.db import connection
from pytest_django.fixtures import DjangoCaptureOnCommitCallbacks as OnCommit
from pytest_django.fixtures import Settings as SettingsWrapper

from marketdata.domain import BarRecord, Timeframe
from marketdata.selectors import bars_frame
from marketdata.services import bars_ingest, instrument_ensure
from quant.errors import NotFoundError, ValidationError
from quant.features.definitions import (
    FeatureSetDefinition,
    compute_features,
    feature_set_validate,
)
from research.feature_store import (
    FeatureLoad,
    cache_counters,
    feature_set_ensure,
    features_get,
    features_load,
)
from research.feature_store import bars as bars_module
from research.feature_store import cache as cache_module
from research.models import FeatureCacheEntry, FeatureSetVersion
from tests.support.fixtures import make_bars

pytestmark = pytest.mark.django_db

DAY = Timeframe.DAY_1
T0 = datetime(2024, 1, 2, tzinfo=UTC)
# Finite memory only (rolling windows, returns): the value at a bar depends on the last
# ``warmup`` bars alone, so features of a range equal features of all history, sliced.
WINDOWED: dict[str, Any] = {
    "name": "fs_test",
    "description": "rolling features",
    "features": [
        {"kind": "returns", "params": {"periods": 5}},
        {"kind": "zscore", "params": {"window": 20}},
        {"kind": "bollinger", "name": "bb", "params": {"window": 10}},
        {"kind": "rolling_std", "params": {"window": 14, "source": "log_returns"}},
    ],
}


@pytest.fixture(autouse=True)
def media(settings: SettingsWrapper, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return tmp_path / "media"


@pytest.fixture
def definition() -> FeatureSetDefinition:
    return feature_set_validate(WINDOWED, source="test")


@pytest.fixture
def version(definition: FeatureSetDefinition) -> FeatureSetVersion:
    return feature_set_ensure(definition=definition)


def ingest(bars: list[BarRecord], symbol: str = "AAA") -> None:
    bars_ingest(symbol=symbol, timeframe=DAY, bars=bars, source="test")


def load(version: FeatureSetVersion, start: datetime, end: datetime, **kw: Any) -> FeatureLoad:
    return features_get(
        version=version, symbol=kw.get("symbol", "AAA"), timeframe=DAY, start=start, end=end
    )


def counts_after(action: Callable[[], object]) -> dict[str, int]:
    before = cache_counters.snapshot()
    action()
    after = cache_counters.snapshot()
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


def stored_files(media: Path) -> list[Path]:
    return sorted(p for p in media.rglob("*.parquet"))


@pytest.fixture(params=["sql", "rows"])
def fingerprint_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Fingerprints computed in PostgreSQL, or row by row in Python (the SQLite path)."""
    if request.param == "rows":
        monkeypatch.setattr(bars_module, "_fingerprint_sql", bars_module._fingerprint_rows)
    return str(request.param)


def corrected(bar: BarRecord) -> BarRecord:
    """The same bar with another close (still within its high and low)."""
    return dataclasses.replace(bar, close=(bar.high + bar.low) / Decimal(2) + Decimal("0.01"))


def test_first_load_computes_then_the_cache_is_reused_without_recomputing(
    version: FeatureSetVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    bars = make_bars("AAA", DAY, T0, 80)
    ingest(bars)
    start, end = bars[30].ts, bars[69].ts

    assert counts_after(lambda: load(version, start, end)) == {"miss": 1}

    def no_compute(*args: object, **kwargs: object) -> pd.DataFrame:
        raise AssertionError("a cache hit must not compute features")

    monkeypatch.setattr(cache_module, "compute_features", no_compute)
    assert counts_after(lambda: load(version, start, end)) == {"hit": 1}
    assert FeatureCacheEntry.objects.get().last_used_at is not None


def test_computed_and_cached_frames_are_identical(
    version: FeatureSetVersion, definition: FeatureSetDefinition
) -> None:
    bars = make_bars("AAA", DAY, T0, 80)
    ingest(bars)

    computed = load(version, bars[30].ts, bars[69].ts)
    cached = load(version, bars[30].ts, bars[69].ts)

    assert (computed.status, cached.status) == ("miss", "hit")
    pd.testing.assert_frame_equal(computed.frame, cached.frame, check_exact=True)
    for frame in (computed.frame, cached.frame):
        assert isinstance(frame.index, pd.DatetimeIndex)
        assert frame.index.tz is UTC and frame.index.name == "ts"
        assert frame.index.dtype == computed.frame.index.dtype
        assert list(frame.columns) == definition.columns()
        assert set(frame.dtypes) == {computed.frame.dtypes.iloc[0]}


def test_features_of_a_range_use_warmup_bars_from_before_start(
    version: FeatureSetVersion, definition: FeatureSetDefinition
) -> None:
    bars = make_bars("AAA", DAY, T0, 80)
    ingest(bars)
    start, end = bars[30].ts, bars[69].ts

    frame = features_load(version=version, symbol="AAA", timeframe="1Day", start=start, end=end)

    assert frame.index[0] == start and frame.index[-1] == end and len(frame) == 40
    assert not frame.iloc[0].isna().any()  # 20 warmup bars were read before start
    everything = compute_features(bars_frame(symbol="AAA", timeframe=DAY), definition)
    # equal up to rounding: rolling sums over a longer history accumulate differently
    pd.testing.assert_frame_equal(frame, everything.loc[start:end], rtol=1e-9)


def test_a_corrected_bar_in_the_warmup_makes_the_entry_stale(
    version: FeatureSetVersion,
    media: Path,
    django_capture_on_commit_callbacks: OnCommit,
    fingerprint_engine: str,
) -> None:
    bars = make_bars("AAA", DAY, T0, 80)
    ingest(bars)
    start, end = bars[30].ts, bars[69].ts
    first = load(version, start, end)
    old_path = first.entry.path

    ingest([corrected(bars[25])])  # before start: only a warmup bar changes
    with django_capture_on_commit_callbacks(execute=True):
        second = load(version, start, end)

    assert second.status == "stale"
    assert first.frame.iloc[0]["zscore_20_close"] != second.frame.iloc[0]["zscore_20_close"]
    entry = FeatureCacheEntry.objects.get()
    assert entry.path != old_path and entry.bars_fingerprint != first.entry.bars_fingerprint
    assert stored_files(media) == [media / entry.path]  # the old file was deleted
    assert load(version, start, end).status == "hit"


def test_back_filled_history_makes_the_entry_stale_and_fills_the_warmup(
    version: FeatureSetVersion, fingerprint_engine: str
) -> None:
    bars = make_bars("AAA", DAY, T0, 80)
    ingest(bars[30:])
    start, end = bars[30].ts, bars[69].ts
    before = load(version, start, end)
    assert before.frame.iloc[0].isna().all()  # no history: warmup rows are NaN

    ingest(bars[:30])
    after = load(version, start, end)

    assert after.status == "stale"
    assert not after.frame.iloc[0].isna().any()


def test_bars_after_end_do_not_invalidate_the_entry(
    version: FeatureSetVersion, fingerprint_engine: str
) -> None:
    bars = make_bars("AAA", DAY, T0, 80)
    ingest(bars[:70])
    load(version, bars[30].ts, bars[69].ts)

    ingest(bars[70:])

    assert load(version, bars[30].ts, bars[69].ts).status == "hit"


def test_a_new_definition_version_gets_its_own_entry(
    version: FeatureSetVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    bars = make_bars("AAA", DAY, T0, 80)
    ingest(bars)
    start, end = bars[30].ts, bars[69].ts
    load(version, start, end)
    changed = {**WINDOWED, "features": [{"kind": "rsi", "params": {"window": 7}}]}

    new_version = feature_set_ensure(definition=feature_set_validate(changed))
    result = load(new_version, start, end)

    assert new_version.pk != version.pk and result.status == "miss"
    assert list(result.frame.columns) == ["rsi_7"]
    assert FeatureCacheEntry.objects.count() == 2
    assert new_version.version[:16] in result.entry.path
    assert load(version, start, end).status == "hit"  # the old version's entry is intact


def test_the_cache_file_is_parquet_in_the_storage(version: FeatureSetVersion, media: Path) -> None:
    bars = make_bars("AAA", DAY, T0, 80)
    ingest(bars)

    entry = load(version, bars[30].ts, bars[69].ts).entry

    stamp = bars[30].ts.strftime("%Y%m%dT%H%M%SZ")
    prefix = f"features/fs_test/{version.version[:16]}/AAA_1Day_{stamp}_"
    assert entry.path.startswith(prefix) and entry.path.endswith(".parquet")
    assert default_storage.exists(entry.path)
    raw = (media / entry.path).read_bytes()
    assert raw[:4] == raw[-4:] == b"PAR1"
    assert pq.read_schema(media / entry.path).names[: len(entry.columns)] == entry.columns
    assert entry.rows == 40


def test_a_missing_cache_file_is_recomputed(version: FeatureSetVersion) -> None:
    bars = make_bars("AAA", DAY, T0, 80)
    ingest(bars)
    first = load(version, bars[30].ts, bars[69].ts)
    default_storage.delete(first.entry.path)

    again = load(version, bars[30].ts, bars[69].ts)

    assert again.status == "stale" and default_storage.exists(again.entry.path)
    pd.testing.assert_frame_equal(first.frame, again.frame, check_exact=True)


@pytest.mark.django_db(transaction=True)
def test_concurrent_loads_of_one_key_leave_one_entry_and_one_file(
    definition: FeatureSetDefinition,
    media: Path,
    monkeypatch: pytest.MonkeyPatch,
    on_postgres: bool,
) -> None:
    if not on_postgres:
        pytest.skip("SQLite's in-memory test database locks whole tables between threads")
    bars = make_bars("AAA", DAY, T0, 80)
    ingest(bars)
    version = feature_set_ensure(definition=definition)
    threads = 4
    all_missed = threading.Barrier(threads, timeout=20)

    def compute_after_all_missed(*args: Any) -> pd.DataFrame:
        all_missed.wait()  # every thread has looked and missed: they all store at once
        return compute_features(*args)

    monkeypatch.setattr(cache_module, "compute_features", compute_after_all_missed)
    results: list[FeatureLoad] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(load(version, bars[30].ts, bars[69].ts))
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)

    assert errors == [] and len(results) == threads
    assert {r.status for r in results} == {"miss"}
    entry = FeatureCacheEntry.objects.get()
    assert stored_files(media) == [media / entry.path]
    for result in results:
        pd.testing.assert_frame_equal(result.frame, results[0].frame, check_exact=True)
    assert load(version, bars[30].ts, bars[69].ts).status == "hit"


def test_a_symbol_without_bars_is_a_clear_error(version: FeatureSetVersion) -> None:
    with pytest.raises(NotFoundError, match="unknown instrument 'ZZZ'"):
        load(version, T0, T0.replace(month=3), symbol="ZZZ")

    instrument_ensure(symbol="EMPTY")
    with pytest.raises(NotFoundError, match=r"no 1Day bars of EMPTY between 2024-01-02"):
        load(version, T0, T0.replace(month=3), symbol="EMPTY")
    assert not FeatureCacheEntry.objects.exists()


def test_bars_only_before_start_are_no_features(version: FeatureSetVersion) -> None:
    bars = make_bars("AAA", DAY, T0, 40)
    ingest(bars)

    with pytest.raises(NotFoundError, match="no 1Day bars of AAA"):
        load(version, datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC), "is before start"),
        (datetime(2024, 2, 1), datetime(2024, 3, 1, tzinfo=UTC), "start .* has no timezone"),
    ],
)
def test_a_bad_range_is_refused(
    version: FeatureSetVersion, start: datetime, end: datetime, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        load(version, start, end)


def test_an_unknown_timeframe_is_refused(version: FeatureSetVersion) -> None:
    with pytest.raises(ValidationError, match="unknown timeframe '2Day'"):
        features_load(version=version, symbol="AAA", timeframe="2Day", start=T0, end=T0)

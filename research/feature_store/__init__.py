"""The feature store: feature set versions from YAML and cached features of stored bars.

The Django shell over ``quant.features`` (which imports no Django): ``sets`` stores the
definitions, ``bars`` finds and fingerprints the bars a range needs (warmup included), and
``cache`` computes their features and caches them as Parquet.
For bars that are not in the database (a CSV file), call
``quant.features.definitions.compute_features`` directly.
"""

from research.feature_store.bars import BarsSpan, bars_span
from research.feature_store.cache import (
    CacheCounters,
    CacheStatus,
    FeatureLoad,
    cache_counters,
    feature_cache_entries_delete,
    features_get,
    features_load,
    version_definition,
)
from research.feature_store.sets import (
    FeatureSetLoadReport,
    LoadedFeatureSet,
    feature_set_definitions_validate,
    feature_set_ensure,
    feature_set_version_get,
    feature_sets_load_directory,
    shipped_feature_sets,
)

__all__ = [
    "BarsSpan",
    "CacheCounters",
    "CacheStatus",
    "FeatureLoad",
    "FeatureSetLoadReport",
    "LoadedFeatureSet",
    "bars_span",
    "cache_counters",
    "feature_cache_entries_delete",
    "feature_set_definitions_validate",
    "feature_set_ensure",
    "feature_set_version_get",
    "feature_sets_load_directory",
    "features_get",
    "features_load",
    "shipped_feature_sets",
    "version_definition",
]

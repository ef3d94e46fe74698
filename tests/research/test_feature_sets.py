"""``load_feature_sets`` and the feature-set admin: YAML definitions become versions keyed
by their hash; cached features can be looked at and deleted from the admin."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from pytest_django.fixtures import DjangoCaptureOnCommitCallbacks as OnCommit
from pytest_django.fixtures import Settings as SettingsWrapper

from marketdata.domain import Timeframe
from marketdata.services import bars_ingest
from quant.errors import NotFoundError
from quant.features.definitions import feature_set_load, feature_set_validate
from research.feature_store import (
    feature_set_ensure,
    feature_set_version_get,
    feature_sets_load_directory,
    features_get,
)
from research.models import FeatureCacheEntry, FeatureSet, FeatureSetVersion
from tests.support.fixtures import make_bars

pytestmark = pytest.mark.django_db

SHIPPED_DIR = Path(settings.BASE_DIR) / "configs" / "features"
SHIPPED_NAMES = sorted(feature_set_load(p).name for p in SHIPPED_DIR.glob("*.yaml"))


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    target = tmp_path / "features"
    shutil.copytree(SHIPPED_DIR, target)
    return target


def run(*args: str) -> str:
    out = StringIO()
    call_command("load_feature_sets", *args, stdout=out)
    return out.getvalue()


def write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_loading_the_shipped_definitions_stores_one_current_version_each() -> None:
    out = run()

    sets = list(FeatureSet.objects.select_related("current_version").order_by("name"))
    assert [s.name for s in sets] == SHIPPED_NAMES
    for feature_set in sets:
        definition = feature_set_load(SHIPPED_DIR / f"{feature_set.name}.yaml")
        assert feature_set.current_version is not None
        assert feature_set.current_version.version == definition.version
        assert feature_set.current_version.definition == definition.as_dict()
        assert f"{feature_set.name}: new version {definition.version[:12]}" in out


def test_loading_again_changes_nothing(config_dir: Path) -> None:
    run("--path", str(config_dir))

    out = run("--path", str(config_dir))

    assert FeatureSetVersion.objects.count() == len(SHIPPED_NAMES)
    assert out.count("unchanged") == len(SHIPPED_NAMES)


def test_a_changed_definition_is_a_new_current_version_and_back_reuses_the_old_one(
    config_dir: Path,
) -> None:
    file = config_dir / "technical_basic.yaml"
    original = yaml.safe_load(file.read_text())
    run("--path", str(file))
    first = feature_set_version_get(name="technical_basic")
    changed = {**original, "features": [*original["features"], {"kind": "obv"}]}

    write(file, changed)
    report = feature_sets_load_directory(path=file)
    second = feature_set_version_get(name="technical_basic")
    write(file, original)
    feature_sets_load_directory(path=file)
    third = feature_set_version_get(name="technical_basic")

    assert report.created == 1
    assert second.pk != first.pk and third.pk == first.pk
    assert FeatureSetVersion.objects.filter(feature_set__name="technical_basic").count() == 2


def test_a_new_description_alone_is_no_new_version() -> None:
    data = {"name": "fs_desc", "features": [{"kind": "rsi"}]}
    version = feature_set_ensure(definition=feature_set_validate(data))

    again = feature_set_ensure(definition=feature_set_validate({**data, "description": "new"}))

    assert again.pk == version.pk
    assert FeatureSet.objects.get(name="fs_desc").description == "new"


def test_check_with_a_bad_file_names_the_file_and_the_field_and_writes_nothing(
    config_dir: Path,
) -> None:
    bad = write(
        config_dir / "broken.yaml",
        {"name": "broken", "features": [{"kind": "rsi", "params": {"window": 1}}]},
    )

    with pytest.raises(CommandError) as raised:
        run("--path", str(config_dir), "--check")
    with pytest.raises(CommandError):
        run("--path", str(config_dir))

    message = str(raised.value)
    assert f"{bad}: features[0].params.window" in message
    assert "1 of 4 feature set file(s) invalid" in message
    assert not FeatureSet.objects.exists()


def test_check_lists_valid_files_without_writing(config_dir: Path) -> None:
    out = run("--path", str(config_dir), "--check")

    assert out.count(": valid, version ") == len(SHIPPED_NAMES)
    assert not FeatureSet.objects.exists()


def test_two_files_with_one_name_are_refused(config_dir: Path) -> None:
    copy = config_dir / "copy.yaml"
    shutil.copy(config_dir / "mean_reversion.yaml", copy)

    original = config_dir / "mean_reversion.yaml"
    expected = f"{original}: name: 'mean_reversion' is already used by {copy}"  # files in order
    with pytest.raises(CommandError, match=re.escape(expected)):
        run("--path", str(config_dir))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing", "no such file or directory"),
        (lambda tmp: tmp, "no feature set files"),
    ],
)
def test_a_path_without_definitions_is_a_clear_error(
    tmp_path: Path, make: object, message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        run("--path", str(make(tmp_path)))  # type: ignore[operator]


def test_version_get_by_prefix_and_unknown_names() -> None:
    version = feature_set_ensure(
        definition=feature_set_validate({"name": "fs_get", "features": [{"kind": "obv"}]})
    )

    assert feature_set_version_get(name="fs_get", version=version.version[:8]) == version
    with pytest.raises(NotFoundError, match="no feature set named 'nope'"):
        feature_set_version_get(name="nope")
    other = "0000" if version.version.startswith("ffff") else "ffff"
    with pytest.raises(NotFoundError, match=f"no version starting with '{other}'"):
        feature_set_version_get(name="fs_get", version=other)


# --- admin ---------------------------------------------------------------------------------


@pytest.fixture
def cached(settings: SettingsWrapper, tmp_path: Path) -> FeatureCacheEntry:
    settings.MEDIA_ROOT = tmp_path / "media"
    bars = make_bars("AAA", Timeframe.DAY_1, datetime(2024, 1, 2, tzinfo=UTC), 40)
    bars_ingest(symbol="AAA", timeframe=Timeframe.DAY_1, bars=bars, source="test")
    version = feature_set_ensure(
        definition=feature_set_validate({"name": "fs_admin", "features": [{"kind": "rsi"}]})
    )
    return features_get(
        version=version, symbol="AAA", timeframe="1Day", start=bars[20].ts, end=bars[-1].ts
    ).entry


def test_admin_pages_show_sets_versions_and_entries(
    admin_client: Client, cached: FeatureCacheEntry
) -> None:
    version = cached.feature_set_version
    pages = [
        reverse("admin:quant_featureset_changelist"),
        reverse("admin:quant_featureset_change", args=[version.feature_set_id]),
        reverse("admin:quant_featuresetversion_changelist"),
        reverse("admin:quant_featurecacheentry_changelist"),
        reverse("admin:quant_featurecacheentry_change", args=[cached.pk]),
    ]
    for page in pages:
        assert admin_client.get(page).status_code == 200, page

    detail = admin_client.get(reverse("admin:quant_featuresetversion_change", args=[version.pk]))

    assert detail.status_code == 200
    assert "<pre>name: fs_admin\ndescription: &#x27;&#x27;\nfeatures:\n- kind: rsi" in (
        detail.content.decode()
    )
    assert admin_client.get(reverse("admin:quant_featureset_add")).status_code == 403


def test_admin_action_deletes_entries_and_their_files(
    admin_client: Client, cached: FeatureCacheEntry, django_capture_on_commit_callbacks: OnCommit
) -> None:
    assert default_storage.exists(cached.path)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:quant_featurecacheentry_changelist"),
            {"action": "delete_cached_files", "_selected_action": [cached.pk]},
            follow=True,
        )

    assert "1 cache entry deleted" in response.content.decode()
    assert not FeatureCacheEntry.objects.exists()
    assert not default_storage.exists(cached.path)

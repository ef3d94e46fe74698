"""``manage.py seed_demo`` (what ``make run`` seeds): bars, strategies, feature sets, the demo
backtest; a second run adds nothing."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from pytest_django.fixtures import Settings as SettingsWrapper

from backtests.models import BacktestRun
from marketdata.models import Bar
from research.models import FeatureSet, FeatureSetVersion, StrategyVersion

pytestmark = pytest.mark.django_db

SHIPPED_FEATURE_SETS = {path.stem for path in Path("configs/features").glob("*.yaml")}


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", "--years=1", stdout=out)
    return out.getvalue()


def test_seed_demo_loads_everything_once(settings: SettingsWrapper, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path
    first = seed()

    assert Bar.objects.exists()
    assert set(FeatureSet.objects.values_list("name", flat=True)) == SHIPPED_FEATURE_SETS
    assert all(f"Feature set {name}" in first for name in SHIPPED_FEATURE_SETS)
    assert BacktestRun.objects.filter(status="succeeded").count() == 1
    counts = (
        Bar.objects.count(),
        FeatureSetVersion.objects.count(),
        StrategyVersion.objects.count(),
    )

    second = seed()

    assert "up to date" in second
    assert counts == (
        Bar.objects.count(),
        FeatureSetVersion.objects.count(),
        StrategyVersion.objects.count(),
    )
    assert BacktestRun.objects.count() == 1

"""``load_strategies``: YAML configs become strategies with an append-only version history."""

from __future__ import annotations

import shutil
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from quant.strategies.config import config_load, config_validate
from research import services
from research.models import Strategy, StrategyVersion, VersionSource
from research.selectors import strategies_list, strategy_get, strategy_version_get
from research.services import strategies_load_directory, strategy_version_ensure

pytestmark = pytest.mark.django_db

SHIPPED_DIR = Path(settings.BASE_DIR) / "configs" / "strategies"
SHIPPED_NAMES = sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml"))


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    target = tmp_path / "strategies"
    shutil.copytree(SHIPPED_DIR, target)
    return target


def load(path: Path | None, *args: str) -> str:
    """Run the command (on ``path``, or on its default directory when None); its output."""
    out = StringIO()
    path_args = ["--path", str(path)] if path is not None else []
    call_command("load_strategies", *path_args, *args, stdout=out)
    return out.getvalue()


def edit(path: Path, **params: object) -> None:
    """Change some params of a YAML file (comments are lost; that is fine here)."""
    data = yaml.safe_load(path.read_text())
    data["params"].update(params)
    path.write_text(yaml.safe_dump(data))


def snapshot() -> list[tuple[object, ...]]:
    strategies = list(Strategy.objects.order_by("name").values_list())
    versions = list(StrategyVersion.objects.order_by("pk").values_list())
    return [*strategies, *versions]


def test_first_load_creates_version_1_of_every_file(config_dir: Path) -> None:
    out = load(config_dir)

    assert [s.name for s in strategies_list()] == SHIPPED_NAMES
    for name in SHIPPED_NAMES:
        assert f"{name}: version 1 (new)" in out
        strategy = strategy_get(name=name)
        version = strategy_version_get(strategy=strategy)
        assert version.number == 1 and version.source == VersionSource.FILE
        config = config_load(config_dir / f"{name}.yaml")
        assert version.content_hash == config.content_hash()
        assert version.config == config.as_dict()
        assert version.interface_version == config.strategy_class().interface_version
        assert strategy.class_name == config.class_name
        assert strategy.symbols == list(config.symbols)
        assert strategy.timeframe == config.timeframe
        assert strategy.mode == "research" and strategy.is_active
        assert strategy.source_path.endswith(f"{name}.yaml")


def test_reloading_unchanged_files_creates_nothing(config_dir: Path) -> None:
    load(config_dir)
    before = snapshot()

    out = load(config_dir)

    assert snapshot() == before
    for name in SHIPPED_NAMES:
        assert f"{name}: unchanged (version 1)" in out


def test_editing_params_creates_version_2_and_moves_current(config_dir: Path) -> None:
    load(config_dir)
    edit(config_dir / "sma_crossover.yaml", fast=5, slow=20)

    out = load(config_dir)

    assert "sma_crossover: version 2 (changed)" in out
    assert "momentum: unchanged (version 1)" in out
    strategy = strategy_get(name="sma_crossover")
    assert strategy.current_version is not None and strategy.current_version.number == 2
    assert strategy.current_version.config["params"] == {"fast": 5, "slow": 20}
    assert StrategyVersion.objects.filter(strategy=strategy).count() == 2


def test_old_versions_keep_their_config(config_dir: Path) -> None:
    load(config_dir)
    strategy = strategy_get(name="sma_crossover")
    first = strategy_version_get(strategy=strategy, number=1)
    edit(config_dir / "sma_crossover.yaml", slow=50)

    load(config_dir)

    again = strategy_version_get(strategy=strategy, number=1)
    assert again.config == first.config and again.config["params"] == {"fast": 10, "slow": 30}
    assert again.content_hash == first.content_hash
    assert again.as_config().params == {"fast": 10, "slow": 30}
    current = strategy_version_get(strategy=strategy_get(name="sma_crossover"))
    assert current.number == 2 and current.config["params"]["slow"] == 50


def test_returning_to_an_older_config_gets_a_new_number(config_dir: Path) -> None:
    path = config_dir / "sma_crossover.yaml"
    original = path.read_text()
    load(config_dir)
    edit(path, fast=5)
    load(config_dir)
    path.write_text(original)

    out = load(config_dir)

    assert "sma_crossover: version 3 (changed)" in out
    strategy = strategy_get(name="sma_crossover")
    v1, v3 = (strategy_version_get(strategy=strategy, number=n) for n in (1, 3))
    assert v3.content_hash == v1.content_hash and v3.config == v1.config
    assert strategy.current_version_id == v3.pk


def test_an_invalid_file_rejects_the_whole_load(config_dir: Path) -> None:
    load(config_dir)
    edit(config_dir / "sma_crossover.yaml", fast=7)  # valid change, must not be stored
    (config_dir / "momentum.yaml").write_text(
        (config_dir / "momentum.yaml").read_text().replace("lookback:", "lookbak:")
    )
    before = snapshot()

    with pytest.raises(CommandError) as caught:
        load(config_dir)

    message = str(caught.value)
    assert "momentum.yaml" in message
    assert "params.lookbak: unknown key (did you mean 'lookback'?)" in message
    assert "nothing loaded" in message
    assert snapshot() == before


def test_an_invalid_file_on_first_load_writes_no_strategy(config_dir: Path) -> None:
    (config_dir / "zz_broken.yaml").write_text(
        "name: zz\nclass: rsi_reversion\nsymbols: [SPY]\ntimefrme: 1Day\nparams: {oversold: 80}\n"
    )

    with pytest.raises(CommandError) as caught:
        load(config_dir)

    message = str(caught.value)
    assert "zz_broken.yaml: timefrme: unknown key (did you mean 'timeframe'?)" in message
    assert "zz_broken.yaml: params: levels must satisfy" in message
    assert not Strategy.objects.exists() and not StrategyVersion.objects.exists()


def test_problems_of_several_files_are_all_reported(config_dir: Path) -> None:
    (config_dir / "a.yaml").write_text("name: a\nclass: nope\nsymbols: [SPY]\n")
    (config_dir / "b.yaml").write_text("name: [b\n")

    with pytest.raises(CommandError) as caught:
        load(config_dir)

    message = str(caught.value)
    assert "2 of 6 strategy config file(s) invalid" in message
    assert "a.yaml: class: unknown strategy class 'nope'" in message
    assert "b.yaml: not valid YAML at line" in message
    assert not Strategy.objects.exists()


def test_two_files_with_one_name_are_rejected(config_dir: Path) -> None:
    shutil.copy(config_dir / "momentum.yaml", config_dir / "momentum_copy.yaml")

    with pytest.raises(CommandError, match=r"momentum_copy.yaml: name: 'momentum' is already used"):
        load(config_dir)
    assert not Strategy.objects.exists()


def test_check_validates_and_writes_nothing(config_dir: Path) -> None:
    out = load(config_dir, "--check")

    assert all(f"{name}: valid" in out for name in SHIPPED_NAMES)
    assert not Strategy.objects.exists() and not StrategyVersion.objects.exists()

    (config_dir / "momentum.yaml").write_text("name: momentum\nclass: momentum\n")
    with pytest.raises(CommandError, match=r"momentum.yaml: symbols: required"):
        load(config_dir, "--check")


def test_a_single_file_can_be_loaded(config_dir: Path) -> None:
    out = load(config_dir / "rsi_reversion.yaml")

    assert out.strip() == "rsi_reversion: version 1 (new)"
    assert [s.name for s in strategies_list()] == ["rsi_reversion"]


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no such file or directory"):
        load(tmp_path / "nope")


def test_the_default_path_is_the_shipped_directory() -> None:
    out = load(None, "--check")
    assert all(f"{name}: valid" in out for name in SHIPPED_NAMES)


def test_the_service_returns_per_file_results(config_dir: Path) -> None:
    report = strategies_load_directory(path=config_dir)

    assert [r.name for r in report.results] == SHIPPED_NAMES
    assert report.created == len(SHIPPED_NAMES)
    again = strategies_load_directory(path=config_dir)
    assert again.created == 0 and all(r.version == 1 for r in again.results)


def test_version_ensure_from_another_source_keeps_file_history(config_dir: Path) -> None:
    strategies_load_directory(path=config_dir)
    data = config_load(config_dir / "sma_crossover.yaml").as_dict()
    data["symbols"] = ["SPY", "QQQ"]
    config = config_validate(data)

    version, created = strategy_version_ensure(config=config, source=VersionSource.ADMIN)
    same, created_again = strategy_version_ensure(config=config, source=VersionSource.ADMIN)

    assert created and not created_again and same.pk == version.pk
    assert (version.number, version.source) == (2, "admin")
    strategy = strategy_get(name="sma_crossover")
    assert strategy.symbols == ["SPY", "QQQ"]
    assert strategy.source_path.endswith("sma_crossover.yaml")  # kept when none is given


def test_versions_cannot_be_saved_twice(config_dir: Path) -> None:
    strategies_load_directory(path=config_dir)
    version = strategy_version_get(strategy=strategy_get(name="momentum"))
    version.config = {}

    with pytest.raises(ValueError, match="append-only"):
        version.save()


def test_a_failure_while_writing_rolls_back_every_file(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = services.strategy_version_ensure

    def fail_on_sma(**kwargs: Any) -> tuple[StrategyVersion, bool]:
        if kwargs["config"].name == "sma_crossover":  # the last file, after three were written
            raise RuntimeError("database went away")
        return real(**kwargs)

    monkeypatch.setattr(services, "strategy_version_ensure", fail_on_sma)

    with pytest.raises(RuntimeError):
        strategies_load_directory(path=config_dir)
    assert not Strategy.objects.exists() and not StrategyVersion.objects.exists()


def test_a_new_interface_version_of_the_class_stores_a_new_version(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    strategies_load_directory(path=config_dir)
    cls = config_load(config_dir / "momentum.yaml").strategy_class()
    monkeypatch.setattr(cls, "interface_version", cls.interface_version + 1)

    out = load(config_dir)

    assert "momentum: version 2 (changed)" in out
    assert "sma_crossover: unchanged (version 1)" in out
    version = strategy_version_get(strategy=strategy_get(name="momentum"))
    assert version.interface_version == cls.interface_version


def test_admin_shows_strategies_and_versions_read_only(
    config_dir: Path, admin_client: Client
) -> None:
    strategies_load_directory(path=config_dir)
    version = strategy_version_get(strategy=strategy_get(name="sma_crossover"))

    listing = admin_client.get(reverse("admin:quant_strategy_changelist"))
    page = admin_client.get(reverse("admin:quant_strategyversion_change", args=[version.pk]))
    detail = admin_client.get(reverse("admin:quant_strategy_change", args=[version.strategy_id]))

    assert listing.status_code == 200 and b"sma_crossover" in listing.content
    assert page.status_code == 200
    assert b"<pre>name: sma_crossover\nclass: sma_crossover\n" in page.content
    assert b"fast: 10" in page.content
    assert detail.status_code == 200 and b"v1</a>" in detail.content
    add = admin_client.get(reverse("admin:quant_strategyversion_add"))
    assert add.status_code == 403
    delete = admin_client.post(
        reverse("admin:quant_strategyversion_delete", args=[version.pk]), {"post": "yes"}
    )
    assert delete.status_code == 403 and StrategyVersion.objects.filter(pk=version.pk).exists()

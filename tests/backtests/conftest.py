"""Fixtures for the backtests app: stored bars and loaded strategy versions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from marketdata.domain import Timeframe
from marketdata.services import bars_ingest
from quant.strategies.config import StrategyConfig, config_validate
from research.models import StrategyVersion
from research.services import strategy_review_builtin, strategy_version_ensure
from tests.support.fixtures import make_bars

START = datetime(2022, 1, 3, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def stored_bars(db: None) -> dict[str, int]:
    """400 synthetic daily bars each of SPY and QQQ in the database."""
    counts = {}
    for symbol in ("SPY", "QQQ"):
        bars = make_bars(symbol, Timeframe.DAY_1, START, 400)
        bars_ingest(symbol=symbol, timeframe=Timeframe.DAY_1, bars=bars, source="test")
        counts[symbol] = len(bars)
    return counts


def sma_config(**changes: object) -> StrategyConfig:
    data = yaml.safe_load((ROOT / "configs" / "strategies" / "sma_crossover.yaml").read_text())
    data.update(changes)
    return config_validate(data)


@pytest.fixture
def sma_version(db: None) -> StrategyVersion:
    version, _ = strategy_version_ensure(config=sma_config(), source="file")
    reviewed(version)
    return version


def reviewed(version: StrategyVersion) -> StrategyVersion:
    """Pass gate 1 (strategy review) the way ``seed_demo`` does for shipped strategies."""
    strategy_review_builtin(strategy=version.strategy, note="test")
    return version

"""Fixtures of the risk tests: two users (for the two-person rule) and strategies."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache

from research.models import Strategy


@pytest.fixture(autouse=True)
def _fresh_code_counters() -> None:
    """The kill-switch code's failure counters live in the cache (local memory here)."""
    cache.clear()


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="alice", password="pw-alice-123")


@pytest.fixture
def bob(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="bob", password="pw-bob-1234")


def make_strategy(name: str = "sma_spy") -> Strategy:
    return Strategy.objects.create(name=name, class_name="sma_crossover", symbols=["SPY"])


@pytest.fixture
def strategy(db: None) -> Strategy:
    return make_strategy()

"""Reads of the research app: strategies and their config versions."""

from __future__ import annotations

from django.db.models import QuerySet

from quant.core.errors import NotFoundError
from quant.models import Strategy, StrategyVersion


def strategies_list(*, is_active: bool | None = None) -> QuerySet[Strategy]:
    qs = Strategy.objects.select_related("current_version").order_by("name")
    if is_active is not None:
        qs = qs.filter(is_active=is_active)
    return qs


def strategy_get(*, name: str) -> Strategy:
    strategy = strategies_list().filter(name=name).first()
    if strategy is None:
        raise NotFoundError(f"no strategy named {name!r}", details={"name": name})
    return strategy


def strategy_version_get(*, strategy: Strategy, number: int | None = None) -> StrategyVersion:
    """Version ``number`` of the strategy, or its current version when ``number`` is None."""
    if number is None:
        if strategy.current_version_id is None:
            raise NotFoundError(f"strategy {strategy.name!r} has no version yet")
        number_filter = {"pk": strategy.current_version_id}
    else:
        number_filter = {"number": number}
    version = (
        StrategyVersion.objects.select_related("strategy")
        .filter(strategy=strategy, **number_filter)
        .first()
    )
    if version is None:
        raise NotFoundError(
            f"strategy {strategy.name!r} has no version {number}",
            details={"strategy": strategy.name, "number": number},
        )
    return version

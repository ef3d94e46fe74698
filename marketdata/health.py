"""Health of the market data: every stored series as recent as the exchange calendar expects."""

from __future__ import annotations

from typing import Any

from marketdata.selectors import instruments_coverage
from monitoring.health import ComponentStatus


def check_series_freshness(coverage: list[Any] | None = None) -> ComponentStatus:
    """Every stored instrument and timeframe as recent as the exchange calendar expects
    (``coverage``: ``instruments_coverage()`` when the caller has read it already)."""
    coverage = instruments_coverage() if coverage is None else coverage
    if not coverage:
        return ComponentStatus("data_freshness", False, "no instruments stored yet")
    stale = [f"{c.instrument.symbol} {c.timeframe}" for c in coverage if c.freshness.is_stale]
    if stale:
        shown = ", ".join(stale[:10]) + (f" and {len(stale) - 10} more" if len(stale) > 10 else "")
        return ComponentStatus("data_freshness", False, f"stale: {shown}")
    return ComponentStatus("data_freshness", True, f"{len(coverage)} series up to date")

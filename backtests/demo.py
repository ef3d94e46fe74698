"""The demo strategies and a finished demo backtest for the embedded mode (``make run``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from backtests import services
from backtests.engine import BacktestConfig
from backtests.models import BacktestRun, RunStatus
from quant.approvals import strategy_review_builtin
from quant.models import Strategy
from quant.services import LoadReport, strategies_load_directory

DEMO_STRATEGY = "sma_crossover"


@dataclass(frozen=True)
class DemoBacktest:
    strategies: LoadReport
    run: BacktestRun | None  # the run made by this call (None when one existed)


def demo_backtest_ensure(*, configs: Path | None = None) -> DemoBacktest:
    """Load the shipped strategy configs; run the demo strategy once if it never succeeded."""
    report = strategies_load_directory(
        path=configs or Path(settings.BASE_DIR) / "configs" / "strategies"
    )
    for shipped in Strategy.objects.filter(name__in=[r.name for r in report.results]):
        strategy_review_builtin(
            strategy=shipped, note="built-in strategy shipped with the platform (demo seed)"
        )
    strategy = Strategy.objects.select_related("current_version").get(name=DEMO_STRATEGY)
    version = strategy.current_version
    assert version is not None
    if BacktestRun.objects.filter(strategy_version=version, status=RunStatus.SUCCEEDED).exists():
        return DemoBacktest(report, None)
    run = services.backtest_run_create(strategy_version=version, config=BacktestConfig())
    outcome = services.backtest_run_execute(run_id=run.pk)
    return DemoBacktest(report, outcome.run)

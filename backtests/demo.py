"""The demo strategies and a finished demo backtest for the embedded mode (``make run``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from backtests import services
from backtests.models import BacktestRun, RunStatus
from quant.backtest import BacktestConfig
from research.models import Strategy
from research.services import LoadReport, strategies_load_directory, strategy_review_builtin

DEMO_STRATEGY = "sma_crossover"


@dataclass(frozen=True)
class DemoBacktest:
    strategies: LoadReport
    run: BacktestRun | None  # the run made by this call (None when one existed)


def builtin_reviews(report: LoadReport) -> None:
    """Review the shipped strategies, in the versions the shipped files hold: an edit made
    since (through the API or the dashboard) is reviewed like any other, by a second user."""
    from_files = {r.name: r.version for r in report.results if not (r.kept or r.conflict)}
    shipped = Strategy.objects.filter(name__in=from_files).select_related("current_version")
    for strategy in shipped:
        version = strategy.current_version
        if version is not None and version.number == from_files[strategy.name]:
            strategy_review_builtin(
                strategy=strategy,
                version=version,
                note="built-in strategy shipped with the platform (demo seed)",
            )


def demo_backtest_ensure(*, configs: Path | None = None) -> DemoBacktest:
    """Load the shipped strategy configs; run the demo strategy once if it never succeeded."""
    report = strategies_load_directory(
        path=configs or Path(settings.BASE_DIR) / "configs" / "strategies"
    )
    builtin_reviews(report)
    strategy = Strategy.objects.select_related("current_version").get(name=DEMO_STRATEGY)
    version = strategy.current_version
    assert version is not None
    if BacktestRun.objects.filter(strategy_version=version, status=RunStatus.SUCCEEDED).exists():
        return DemoBacktest(report, None)
    run = services.backtest_run_create(strategy_version=version, config=BacktestConfig())
    outcome = services.backtest_run_execute(run_id=run.pk)
    return DemoBacktest(report, outcome.run)

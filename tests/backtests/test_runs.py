"""BacktestRun: the state machine, the Celery task, cancel, failures that touch nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from backtests import services
from backtests.models import BacktestRun, BacktestTrade, RunStatus
from backtests.tasks import run_backtest
from quant.backtest import BacktestConfig
from quant.errors import ConflictError, ValidationError
from quant.strategies.base import PortfolioState, PriceBar, Signal, Strategy
from quant.strategies.registry import _REGISTRY, register
from research.models import StrategyVersion
from research.services import strategy_version_ensure
from tests.backtests.conftest import reviewed, sma_config

pytestmark = pytest.mark.django_db


def test_a_run_goes_from_queued_to_succeeded_and_stores_everything(
    stored_bars: dict[str, int], sma_version: StrategyVersion
) -> None:
    run = services.backtest_run_create(strategy_version=sma_version, config=BacktestConfig())
    assert run.status == RunStatus.QUEUED and run.progress == 0.0

    run_backtest(run.pk)  # the Celery task, called in-process

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    assert run.progress == 1.0 and run.started_at and run.finished_at
    assert run.bar_count == stored_bars["SPY"]
    assert run.strategy_config["params"] == {"fast": 10, "slow": 30}
    assert run.backtest_config["commission_per_trade"] == "1.00"
    assert run.metrics is not None and run.total_trades == run.metrics["total_trades"]
    assert run.total_trades == BacktestTrade.objects.filter(run=run).count() > 0
    assert Decimal(run.metrics["final_equity"]) == run.final_equity
    assert len(run.equity_curve or []) == stored_bars["SPY"]
    trades = list(BacktestTrade.objects.filter(run=run).order_by("seq"))
    assert [t.seq for t in trades] == list(range(1, len(trades) + 1))
    assert all(t.commission == Decimal("2.00") for t in trades)  # $1 per fill, two fills
    report = json.loads(run.report_json.read())
    assert report["run_id"] == run.pk
    assert len(report["trades"]) == run.total_trades
    assert "plotly" in run.report_html.read().decode()[:200_000].lower()


def test_redelivered_task_leaves_a_finished_run_alone(
    stored_bars: dict[str, int], sma_version: StrategyVersion
) -> None:
    run = services.backtest_run_create(strategy_version=sma_version, config=BacktestConfig())
    services.backtest_run_execute(run_id=run.pk)
    finished = BacktestRun.objects.get(pk=run.pk).finished_at

    outcome = services.backtest_run_execute(run_id=run.pk)

    assert outcome.result is None
    assert BacktestRun.objects.get(pk=run.pk).finished_at == finished
    assert BacktestTrade.objects.filter(run=run).count() == run.total_trades or True
    assert BacktestTrade.objects.filter(run=run).values("seq").distinct().count() == (
        BacktestTrade.objects.filter(run=run).count()
    )


def test_the_run_records_exactly_which_version_ran(stored_bars: dict[str, int]) -> None:
    v1 = reviewed(strategy_version_ensure(config=sma_config(), source="file")[0])
    first = services.backtest_run_create(strategy_version=v1, config=BacktestConfig())
    v2, created = strategy_version_ensure(
        config=sma_config(params={"fast": 5, "slow": 20}), source="file"
    )
    reviewed(v2)  # a review belongs to one version
    second = services.backtest_run_create(strategy_version=v2, config=BacktestConfig())
    services.backtest_run_execute(run_id=first.pk)
    services.backtest_run_execute(run_id=second.pk)

    first.refresh_from_db()
    second.refresh_from_db()
    assert created and v2.number == v1.number + 1
    assert first.strategy_version_id == v1.pk and first.strategy_config["params"]["fast"] == 10
    assert second.strategy_version_id == v2.pk and second.strategy_config["params"]["fast"] == 5
    assert first.metrics != second.metrics


def test_cancel_a_queued_run_at_once(sma_version: StrategyVersion) -> None:
    run = services.backtest_run_create(strategy_version=sma_version, config=BacktestConfig())

    services.backtest_run_cancel(run=run)
    services.backtest_run_execute(run_id=run.pk)  # the task arrives later: it does nothing

    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.started_at is None


def test_cancelling_a_finished_run_is_a_conflict(
    stored_bars: dict[str, int], sma_version: StrategyVersion
) -> None:
    run = services.backtest_run_create(strategy_version=sma_version, config=BacktestConfig())
    services.backtest_run_execute(run_id=run.pk)
    run.refresh_from_db()

    with pytest.raises(ConflictError, match="already finished"):
        services.backtest_run_cancel(run=run)


class _CancelMidRun(Strategy):
    """Asks for its own run to be cancelled from inside the run, after 50 bars."""

    name = "test_cancel_mid_run"
    run_id = 0

    def reset(self) -> None:
        self.seen = 0

    def on_market_data(self, bar: PriceBar) -> None:
        self.seen += 1
        if self.seen == 50:
            run = BacktestRun.objects.get(pk=type(self).run_id)
            services.backtest_run_cancel(run=run)

    def generate_signals(self, state: PortfolioState) -> list[Signal]:
        return []


class _Exploding(Strategy):
    name = "test_exploding"

    def on_market_data(self, bar: PriceBar) -> None:
        if bar.ts.year == 2022 and bar.ts.month == 3:
            raise ZeroDivisionError("the strategy divided by zero")

    def generate_signals(self, state: PortfolioState) -> list[Signal]:
        return []


@pytest.fixture
def test_strategies() -> Iterator[None]:
    register(_CancelMidRun)
    register(_Exploding)
    yield
    _REGISTRY.pop(_CancelMidRun.name, None)
    _REGISTRY.pop(_Exploding.name, None)


def _version_of(class_name: str) -> StrategyVersion:
    config = sma_config(**{"name": class_name, "class": class_name, "params": {}})
    return reviewed(strategy_version_ensure(config=config, source="file")[0])


def test_cancel_works_mid_run(
    stored_bars: dict[str, int], test_strategies: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "PROGRESS_EVERY_S", 0.0)
    monkeypatch.setattr("quant.backtest.engine.CHECKPOINT_BARS", 10)
    run = services.backtest_run_create(
        strategy_version=_version_of(_CancelMidRun.name), config=BacktestConfig()
    )
    _CancelMidRun.run_id = run.pk

    services.backtest_run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert run.cancel_requested and 0 < run.progress < 1
    assert run.metrics is None and not BacktestTrade.objects.filter(run=run).exists()


def test_a_strategy_that_raises_fails_the_run_with_a_readable_reason(
    stored_bars: dict[str, int], test_strategies: None
) -> None:
    run = services.backtest_run_create(
        strategy_version=_version_of(_Exploding.name), config=BacktestConfig()
    )

    services.backtest_run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "test_exploding" in run.error_message
    assert "ZeroDivisionError: the strategy divided by zero" in run.error_message
    assert "2022-03" in run.error_message
    assert run.metrics is None and not run.report_json


@pytest.mark.parametrize(
    ("symbols", "start", "end", "message"),
    [
        (("MSFT",), None, None, "no bars for MSFT"),
        (("SPY",), datetime(2030, 1, 1, tzinfo=UTC), None, "no bars for SPY from 2030-01-01"),
        (
            ("SPY", "QQQ", "NOPE"),
            datetime(2022, 2, 1, tzinfo=UTC),
            datetime(2022, 3, 1, tzinfo=UTC),
            "no bars for NOPE between 2022-02-01 and 2022-03-01",
        ),
    ],
)
def test_missing_data_fails_the_run_and_names_it(
    stored_bars: dict[str, int],
    sma_version: StrategyVersion,
    symbols: tuple[str, ...],
    start: datetime | None,
    end: datetime | None,
    message: str,
) -> None:
    config = BacktestConfig(start_date=start, end_date=end)
    run = services.backtest_run_create(strategy_version=sma_version, config=config, symbols=symbols)

    services.backtest_run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert message in run.error_message


def test_an_empty_date_range_is_refused_before_anything_is_stored(
    sma_version: StrategyVersion,
) -> None:
    with pytest.raises(ValidationError, match="after end_date"):
        services.backtest_run_create(
            strategy_version=sma_version,
            config=BacktestConfig(
                start_date=datetime(2023, 1, 1, tzinfo=UTC),
                end_date=datetime(2022, 1, 1, tzinfo=UTC),
            ),
        )
    assert not BacktestRun.objects.exists()


def test_rerun_queues_a_copy_with_the_same_snapshot(
    stored_bars: dict[str, int],
    sma_version: StrategyVersion,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queued: list[int] = []

    def delay(run_id: int) -> _Sent:
        queued.append(run_id)
        return _Sent()

    monkeypatch.setattr(run_backtest, "delay", delay)
    run = services.backtest_run_create(strategy_version=sma_version, config=BacktestConfig())
    services.backtest_run_execute(run_id=run.pk)

    with django_capture_on_commit_callbacks(execute=True):
        again = services.backtest_run_rerun(run=run)

    assert queued == [again.pk] and again.pk != run.pk
    assert again.status == RunStatus.QUEUED
    assert again.strategy_version_id == run.strategy_version_id
    assert again.backtest_config == run.backtest_config
    assert again.strategy_config == run.strategy_config
    assert BacktestRun.objects.get(pk=again.pk).task_id == "task-1"


class _Sent:
    id = "task-1"


def test_reports_are_served_to_staff_only(
    stored_bars: dict[str, int], sma_version: StrategyVersion, admin_client: Client, client: Client
) -> None:
    run = services.backtest_run_create(strategy_version=sma_version, config=BacktestConfig())
    services.backtest_run_execute(run_id=run.pk)

    page = admin_client.get(f"/backtests/runs/{run.pk}/report.html")
    data = admin_client.get(f"/backtests/runs/{run.pk}/report.json")
    anonymous = client.get(f"/backtests/runs/{run.pk}/report.html")

    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    body = b"".join(page.streaming_content)  # type: ignore[attr-defined]
    assert b'src="http' not in body and b"sma_crossover" in body
    assert json.loads(b"".join(data.streaming_content))["run_id"] == run.pk  # type: ignore[attr-defined]
    assert anonymous.status_code == 302
    assert admin_client.get("/backtests/runs/999999/report.html").status_code == 404


def test_the_landing_page_lists_the_latest_runs(
    stored_bars: dict[str, int], sma_version: StrategyVersion, viewer: Client
) -> None:
    run = services.backtest_run_create(strategy_version=sma_version, config=BacktestConfig())
    services.backtest_run_execute(run_id=run.pk)
    run.refresh_from_db()

    page = viewer.get("/marketdata").content.decode()

    assert "Latest backtests" in page and "sma_crossover v1" in page
    assert f"/backtests/runs/{run.pk}/report.html" in page
    assert str(run.final_equity) in page


def test_a_run_that_cannot_be_queued_fails_with_the_reason(
    sma_version: StrategyVersion,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    def broker_down(run_id: int) -> None:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    monkeypatch.setattr(run_backtest, "delay", broker_down)
    run = services.backtest_run_create(strategy_version=sma_version, config=BacktestConfig())

    with django_capture_on_commit_callbacks(execute=True):
        services.backtest_run_submit(run=run)

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "could not queue the run: ConnectionError" in run.error_message

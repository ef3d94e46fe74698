"""``manage.py run_backtest --config FILE``: run a strategy config and print a summary.

Bars come from the database, or from ``--csv FILE`` without touching the database at all.
``--save`` stores the run (strategy version, trades, metrics, report files) like a run
started from the admin.
"""

from __future__ import annotations

import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError
from django.db import transaction

from backtests import services
from backtests.management import cli
from backtests.models import RunStatus
from backtests.reports import run_report_html
from quant.backtest import BacktestConfig, BacktestResult, EngineMode, FillAt
from quant.backtest.report import ReportGenerator
from quant.strategies.config import StrategyConfig
from research.services import strategy_file_sync


class Command(cli.JobCommand):
    help = "Run a backtest of a strategy config and print its metrics."

    def add_arguments(self, parser: ArgumentParser) -> None:
        cli.add_strategy_arguments(parser)
        cli.add_period_and_cost_arguments(parser)
        parser.add_argument(
            "--fill-at", choices=[f.value for f in FillAt], default=FillAt.CLOSE.value
        )
        parser.add_argument(
            "--mode", choices=[m.value for m in EngineMode], default=EngineMode.EVENT.value
        )
        parser.add_argument(
            "--max-volume-participation",
            help="cap each fill at this share of the bar's volume, e.g. 0.1 (partial fills)",
        )
        parser.add_argument(
            "--volume-impact-bps", default="0", help="extra slippage at 100%% of a bar's volume"
        )
        cli.add_output_arguments(
            parser,
            save_help="store the run in the database",
            async_help="with --save: queue the run for the Celery worker and return at once",
        )

    def run(self, options: dict[str, Any], configs: cli.RunConfigs) -> None:
        file_config, symbols, strategy_config = configs
        period = cli.period_and_costs(options)
        start, end = period["start_date"], period["end_date"]
        config = BacktestConfig(
            **period,
            fill_at=FillAt(options["fill_at"]),
            max_volume_participation=(
                cli.decimal_option(
                    options["max_volume_participation"], "--max-volume-participation"
                )
                if options["max_volume_participation"]
                else None
            ),
            volume_impact_bps=cli.decimal_option(
                options["volume_impact_bps"], "--volume-impact-bps"
            ),
            timeframe=strategy_config.timeframe,
        )
        mode = EngineMode(options["mode"])
        if options["queue"]:
            self._queue(file_config, symbols, config, mode, options["config"])
            return
        if options["save"]:
            result = self._saved_run(file_config, symbols, config, mode, options["config"])
        else:
            data = (
                cli.csv_market_data(options["csv"], strategy_config, start, end)
                if options["csv"]
                else services.market_data_load(
                    symbols=strategy_config.symbols,
                    timeframe=strategy_config.timeframe,
                    start=start,
                    end=end,
                )
            )
            result = services.backtest_execute(
                strategy_config=strategy_config, data=data, config=config, mode=mode
            )
        self._write_reports(result, options["json_out"], options["html_out"])
        self.stdout.write(summary_table(result))

    def _saved_run(
        self,
        file_config: StrategyConfig,
        symbols: tuple[str, ...] | None,
        config: BacktestConfig,
        mode: EngineMode,
        path: str,
    ) -> BacktestResult:

        version, created = strategy_file_sync(path=Path(path), config=file_config)
        run = services.backtest_run_create(
            strategy_version=version, config=config, mode=mode, symbols=symbols
        )
        outcome = services.backtest_run_execute(run_id=run.pk)
        run = outcome.run
        if run.status != RunStatus.SUCCEEDED or outcome.result is None:
            raise CommandError(f"run {run.pk} {run.status}: {run.error_message}")
        state = "new version" if created else "unchanged"
        self.stdout.write(f"saved run {run.pk} of {version} ({state})")
        return outcome.result

    def _queue(
        self,
        file_config: StrategyConfig,
        symbols: tuple[str, ...] | None,
        config: BacktestConfig,
        mode: EngineMode,
        path: str,
    ) -> None:
        with transaction.atomic():
            version, _ = strategy_file_sync(path=Path(path), config=file_config)
            run = services.backtest_run_create(
                strategy_version=version, config=config, mode=mode, symbols=symbols
            )
            services.backtest_run_submit(run=run)
        self.stdout.write(f"Queued backtest run {run.pk} of {version}")

    def _write_reports(
        self, result: BacktestResult, json_out: str | None, html_out: str | None
    ) -> None:
        if json_out:
            Path(json_out).write_text(json.dumps(ReportGenerator().generate_json(result), indent=1))
            self.stdout.write(f"JSON report: {json_out}")
        if html_out:
            Path(html_out).write_text(run_report_html(result))
            self.stdout.write(f"HTML report: {html_out}")


def summary_table(result: BacktestResult) -> str:
    m = result.metrics

    def fmt(value: Any, suffix: str = "") -> str:
        return "n/a" if value is None else f"{value}{suffix}"

    period = (
        f"{result.start_time:%Y-%m-%d} .. {result.end_time:%Y-%m-%d}"
        if result.start_time and result.end_time
        else "n/a"
    )
    rows = [
        ("strategy", result.strategy_id),
        ("symbols", ", ".join(result.metadata.get("symbols", []))),
        ("period", period),
        ("bars", str(result.metadata.get("bars", 0))),
        ("engine", str(result.metadata.get("engine_mode", ""))),
        ("final equity", f"{m.final_equity:,}"),
        ("total return", f"{m.total_return:,} ({m.total_return_pct}%)"),
        ("CAGR", fmt(m.cagr_pct, "%")),
        ("Sharpe", fmt(m.sharpe_ratio)),
        ("Sortino", fmt(m.sortino_ratio)),
        ("max drawdown", f"{m.max_drawdown:,} ({m.max_drawdown_pct}%)"),
        ("trades", f"{m.total_trades} ({m.winning_trades} won, {m.losing_trades} lost)"),
        ("win rate", f"{m.win_rate}%"),
        ("profit factor", fmt(m.profit_factor)),
        ("avg win / loss", f"{fmt(m.avg_win)} / {fmt(m.avg_loss)}"),
        ("exposure", f"{m.exposure_pct}%"),
        ("turnover", str(m.turnover)),
        ("open positions", str(len(result.open_positions))),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows) + "\n"

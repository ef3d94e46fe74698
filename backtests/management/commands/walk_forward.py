"""``manage.py walk_forward --config FILE --in-sample-days N ...``: a walk-forward optimization.

Bars come from the database, or from ``--csv FILE`` without touching the database at all;
both run in this process. ``--save`` stores a run (the strategy must have passed review) and
runs it through Celery, its windows and grid points fanned out over the workers, waiting for
the result; ``--save --async`` queues it and returns. Prints a windows table and the
overfitting verdict; ``--json`` / ``--html`` write the reports.
"""

from __future__ import annotations

import json
import time
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from backtests import walkforward_services as wf_services
from backtests.management import cli
from backtests.models import RunStatus, WalkForwardRun
from backtests.reports import walk_forward_report_html
from backtests.services import market_data_load
from quant.backtest import BacktestConfig
from quant.backtest.walkforward import LocalExecutor, WalkForwardConfig, WalkForwardEngine
from quant.backtest.walkforward_plan import Objective, WindowType
from quant.backtest.walkforward_report import generate_json
from quant.strategies.config import StrategyConfig
from research.services import strategy_file_sync

PROGRESS_EVERY_S = 2.0


class Command(cli.JobCommand):
    help = "Walk-forward optimization of a strategy config: windows, grid, overfitting verdict."

    def add_arguments(self, parser: ArgumentParser) -> None:
        cli.add_strategy_arguments(parser)
        parser.add_argument("--in-sample-days", type=int, required=True, help="bars")
        parser.add_argument("--out-of-sample-days", type=int, required=True, help="bars")
        parser.add_argument("--step-days", type=int, required=True, help="bars between windows")
        parser.add_argument(
            "--mode", choices=[t.value for t in WindowType], default=WindowType.ROLLING.value
        )
        parser.add_argument(
            "--grid",
            action="append",
            default=[],
            metavar="NAME=V1,V2,...",
            help="values of one strategy parameter to try (repeatable)",
        )
        parser.add_argument(
            "--objective", choices=[o.value for o in Objective], default=Objective.SHARPE.value
        )
        parser.add_argument("--min-trades", type=int, default=1, help="per window, in sample")
        cli.add_period_and_cost_arguments(parser)
        cli.add_output_arguments(
            parser,
            save_help="store the run and run it on the Celery workers",
            async_help="with --save: queue the run and return at once",
        )

    def run(self, options: dict[str, Any], configs: cli.RunConfigs) -> None:
        file_config, symbols, strategy_config = configs
        wf_config = WalkForwardConfig(
            in_sample_days=options["in_sample_days"],
            out_of_sample_days=options["out_of_sample_days"],
            step_days=options["step_days"],
            window_type=WindowType(options["mode"]),
            parameter_grid=wf_services.grid_parse(options["grid"]),
            objective=Objective(options["objective"]),
            min_trades_required=options["min_trades"],
        )
        period = cli.period_and_costs(options)
        start, end = period["start_date"], period["end_date"]
        config = BacktestConfig(**period, timeframe=strategy_config.timeframe)
        if options["save"]:
            run = self._saved_run(file_config, symbols, wf_config, config, options)
            if run is None:
                return
            document = json.loads(run.report_json.read())
            html = run.report_html.read().decode() if options["html_out"] else ""
        else:
            data = (
                cli.csv_market_data(options["csv"], strategy_config, start, end)
                if options["csv"]
                else market_data_load(
                    symbols=strategy_config.symbols,
                    timeframe=strategy_config.timeframe,
                    start=start,
                    end=end,
                )
            )
            result = WalkForwardEngine().run(
                strategy_config, data, wf_config, config, executor=LocalExecutor()
            )
            document = generate_json(result)
            html = walk_forward_report_html(result) if options["html_out"] else ""
        if options["json_out"]:
            Path(options["json_out"]).write_text(json.dumps(document, indent=1))
            self.stdout.write(f"JSON report: {options['json_out']}")
        if options["html_out"]:
            Path(options["html_out"]).write_text(html)
            self.stdout.write(f"HTML report: {options['html_out']}")
        self.stdout.write(windows_table(document))
        _refuse_all_flagged(document, wf_config)

    def _saved_run(
        self,
        file_config: StrategyConfig,
        symbols: tuple[str, ...] | None,
        wf_config: WalkForwardConfig,
        config: BacktestConfig,
        options: dict[str, Any],
    ) -> WalkForwardRun | None:
        with transaction.atomic():
            version, _ = strategy_file_sync(path=Path(options["config"]), config=file_config)
            run = wf_services.walk_forward_run_create(
                strategy_version=version,
                wf_config=wf_config,
                backtest_config=config,
                symbols=symbols,
            )
            wf_services.walk_forward_run_submit(run=run)
        summary = f"{run.windows.count()} windows, {run.tasks_total} tasks"
        if options["queue"]:
            self.stdout.write(f"Queued walk-forward run {run.pk} of {version} ({summary})")
            return None
        self.stdout.write(f"Walk-forward run {run.pk} of {version}: {summary}")
        run = wf_services.walk_forward_run_wait(run=run, on_progress=_Progress(self).report)
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"walk-forward run {run.pk} {run.status}: {run.error_message}")
        return run


class _Progress:
    """Prints the run's progress at most every ``PROGRESS_EVERY_S`` seconds, and says so when
    nothing has picked the run up for a while (no Celery worker running)."""

    def __init__(self, command: BaseCommand) -> None:
        self.command, self.began, self.last, self.warned = command, time.monotonic(), 0.0, False

    def report(self, run: WalkForwardRun) -> None:
        now = time.monotonic()
        if run.status == RunStatus.QUEUED and not self.warned and now - self.began > 10:
            self.warned = True
            self.command.stdout.write(
                "still queued: is a Celery worker running? (celery -A config worker)"
            )
        if now - self.last >= PROGRESS_EVERY_S or run.tasks_done == run.tasks_total:
            self.last = now
            self.command.stdout.write(
                f"  {run.status}: {run.tasks_done}/{run.tasks_total} tasks ({run.progress:.0%})"
            )


def windows_table(document: dict[str, Any]) -> str:
    """The windows, the aggregated out-of-sample figures and the verdict, as text."""
    header = ("#", "in sample", "out of sample", "params", "IS obj", "IS tr", "OOS obj", "OOS tr")
    rows = [header]
    for w in document["windows"]:
        rows.append(
            (
                str(w["index"]),
                f"{w['in_sample_start'][:10]}..{w['in_sample_end'][:10]}",
                f"{w['out_of_sample_start'][:10]}..{w['out_of_sample_end'][:10]}",
                _params(w["params"]) if w["params"] is not None else "FLAGGED",
                _number(w["in_sample_objective"]),
                _number(w["in_sample_trades"]),
                _number(w["out_of_sample_objective"]),
                _number(w["out_of_sample_trades"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    flags = [f"window {w['index']}: {w['flag']}" for w in document["windows"] if w["flag"]]
    m = document["aggregated_metrics"]
    config = document["walk_forward_config"]
    lines += [
        *flags,
        "",
        f"objective {config['objective']}, {document['grid_size']} grid point(s), "
        f"{len(document['windows'])} window(s), {document['flagged_windows']} flagged",
        f"out of sample: return {m['total_return_pct']}%, Sharpe {_number(m['sharpe_ratio'])}, "
        f"max drawdown {m['max_drawdown_pct']}%, {m['total_trades']} trades, "
        f"final equity {m['final_equity']}",
        f"verdict: {document['overfitting']['verdict']}",
    ]
    return "\n".join(lines) + "\n"


def _refuse_all_flagged(document: dict[str, Any], wf_config: WalkForwardConfig) -> None:
    windows = document["windows"]
    if windows and all(w["flag"] for w in windows):
        raise CommandError(
            f"no window reached --min-trades {wf_config.min_trades_required} in sample: all "
            f"{len(windows)} windows are flagged and nothing traded out of sample (lower "
            "--min-trades, lengthen --in-sample-days or widen the grid)"
        )


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "(config)"


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)

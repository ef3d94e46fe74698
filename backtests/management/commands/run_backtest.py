"""``manage.py run_backtest --config FILE``: run a strategy config and print a summary.

Bars come from the database, or from ``--csv FILE`` without touching the database at all.
``--save`` stores the run (strategy version, trades, metrics, report files) like a run
started from the admin.
"""

from __future__ import annotations

import json
from argparse import ArgumentParser
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from backtests import services
from backtests.engine import BacktestConfig, BacktestResult, EngineMode, FillAt, MarketData
from backtests.engine.report import ReportGenerator
from backtests.models import RunStatus
from marketdata.domain import Timeframe
from quant.core.errors import ApplicationError
from quant.strategies.config import StrategyConfig, config_load


class Command(BaseCommand):
    help = "Run a backtest of a strategy config and print its metrics."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--config", required=True, help="strategy YAML file")
        parser.add_argument(
            "--symbol", action="append", help="run on this symbol instead (repeatable)"
        )
        parser.add_argument("--csv", help="bars from this CSV/Parquet file (no database)")
        parser.add_argument("--start", help="first day, YYYY-MM-DD (inclusive)")
        parser.add_argument("--end", help="last day, YYYY-MM-DD (inclusive)")
        parser.add_argument("--initial-capital", default="100000")
        parser.add_argument("--commission", default="1.00", help="per fill, in dollars")
        parser.add_argument("--slippage-bps", default="10")
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
        parser.add_argument("--json", dest="json_out", help="write the JSON report here")
        parser.add_argument("--html", dest="html_out", help="write the HTML report here")
        parser.add_argument("--save", action="store_true", help="store the run in the database")
        parser.add_argument(
            "--async",
            dest="queue",
            action="store_true",
            help="with --save: queue the run for the Celery worker and return at once",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self._handle(options)
        except ApplicationError as error:
            raise CommandError(error.message) from None

    def _handle(self, options: dict[str, Any]) -> None:
        if options["csv"] and options["save"]:
            raise CommandError("--save stores a run of database bars; it cannot use --csv")
        if options["queue"] and not options["save"]:
            raise CommandError("--async queues a stored run: add --save")
        if options["queue"] and (options["json_out"] or options["html_out"]):
            raise CommandError(
                "--async returns before the run ends: read its reports from the admin"
            )
        file_config = config_load(options["config"])
        symbols = tuple(s.strip().upper() for s in options["symbol"] or ()) or None
        strategy_config = (
            file_config.model_copy(update={"symbols": symbols}) if symbols else file_config
        )
        start, end = _day(options["start"], "--start"), _day(options["end"], "--end", last=True)
        config = BacktestConfig(
            initial_capital=_decimal(options["initial_capital"], "--initial-capital"),
            commission_per_trade=_decimal(options["commission"], "--commission"),
            slippage_bps=_decimal(options["slippage_bps"], "--slippage-bps"),
            start_date=start,
            end_date=end,
            fill_at=FillAt(options["fill_at"]),
            max_volume_participation=(
                _decimal(options["max_volume_participation"], "--max-volume-participation")
                if options["max_volume_participation"]
                else None
            ),
            volume_impact_bps=_decimal(options["volume_impact_bps"], "--volume-impact-bps"),
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
                _csv_data(options["csv"], strategy_config, start, end)
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
        from quant.services import strategy_version_ensure

        version, created = strategy_version_ensure(
            config=file_config, source="file", source_path=path
        )
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
        from django.db import transaction

        from quant.services import strategy_version_ensure

        with transaction.atomic():
            version, _ = strategy_version_ensure(
                config=file_config, source="file", source_path=path
            )
            run = services.backtest_run_create(
                strategy_version=version, config=config, mode=mode, symbols=symbols
            )
            services.backtest_run_submit(run=run)
        self.stdout.write(f"Queued backtest run {run.pk} of {version}")

    def _write_reports(
        self, result: BacktestResult, json_out: str | None, html_out: str | None
    ) -> None:
        report = ReportGenerator()
        if json_out:
            Path(json_out).write_text(json.dumps(report.generate_json(result), indent=1))
            self.stdout.write(f"JSON report: {json_out}")
        if html_out:
            Path(html_out).write_text(report.generate_html(result))
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


def _decimal(value: str, flag: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise CommandError(f"{flag}: {value!r} is not a number") from None
    if not number.is_finite():
        raise CommandError(f"{flag}: {value!r} is not a finite number")
    return number


def _day(value: str | None, flag: str, *, last: bool = False) -> datetime | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{flag}: {value!r} is not a date (YYYY-MM-DD)") from None
    moment = datetime.combine(day, time(), tzinfo=UTC)
    return moment + timedelta(days=1, microseconds=-1) if last else moment


def _csv_data(
    path: str, config: StrategyConfig, start: datetime | None, end: datetime | None
) -> MarketData:
    import pandas as pd

    from marketdata.providers.files import read_bar_file

    if len(config.symbols) != 1:
        raise CommandError(
            f"--csv holds one symbol's bars, but the config names {len(config.symbols)} "
            f"({', '.join(config.symbols)}): pick one with --symbol"
        )
    symbol = config.symbols[0]
    bars = read_bar_file(path, symbol=symbol, timeframe=Timeframe.parse(config.timeframe))
    frame = pd.DataFrame(
        {
            "open": [float(b.open) for b in bars],
            "high": [float(b.high) for b in bars],
            "low": [float(b.low) for b in bars],
            "close": [float(b.close) for b in bars],
            "volume": [float(b.volume) for b in bars],
        },
        index=pd.DatetimeIndex([b.ts for b in bars], name="ts"),
    )
    return MarketData.from_frames({symbol: frame}, symbols=(symbol,), start=start, end=end)

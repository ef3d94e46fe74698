"""What ``run_backtest`` and ``walk_forward`` share: the config, period, cost, report and
``--save``/``--async`` flags with their checks, and bars read from a CSV/Parquet file.

Bad values raise ``CommandError`` naming the flag (``common.options``).
"""

from __future__ import annotations

from argparse import ArgumentParser
from datetime import datetime
from typing import Any, NamedTuple

from django.core.management.base import BaseCommand, CommandError

from common.options import day_option, decimal_option
from marketdata.domain import Timeframe
from marketdata.providers.files import read_bar_file
from quant.backtest import MarketData
from quant.errors import ApplicationError
from quant.strategies.config import StrategyConfig, config_load

__all__ = [
    "JobCommand",
    "RunConfigs",
    "add_output_arguments",
    "add_period_and_cost_arguments",
    "add_strategy_arguments",
    "check_output_options",
    "csv_market_data",
    "day_option",
    "decimal_option",
    "period_and_costs",
    "strategy_configs",
]


def add_strategy_arguments(parser: ArgumentParser) -> None:
    """``--config``, ``--symbol`` (repeatable) and ``--csv``."""
    parser.add_argument("--config", required=True, help="strategy YAML file")
    parser.add_argument("--symbol", action="append", help="run on this symbol instead (repeatable)")
    parser.add_argument("--csv", help="bars from this CSV/Parquet file (no database)")


def add_period_and_cost_arguments(parser: ArgumentParser) -> None:
    """``--start``/``--end`` (days, inclusive) and the costs every backtest pays."""
    parser.add_argument("--start", help="first day, YYYY-MM-DD (inclusive)")
    parser.add_argument("--end", help="last day, YYYY-MM-DD (inclusive)")
    parser.add_argument("--initial-capital", default="100000")
    parser.add_argument("--commission", default="1.00", help="per fill, in dollars")
    parser.add_argument("--slippage-bps", default="10")


def add_output_arguments(parser: ArgumentParser, *, save_help: str, async_help: str) -> None:
    """``--json``, ``--html``, ``--save`` and ``--async`` (checked by ``check_output_options``)."""
    parser.add_argument("--json", dest="json_out", help="write the JSON report here")
    parser.add_argument("--html", dest="html_out", help="write the HTML report here")
    parser.add_argument("--save", action="store_true", help=save_help)
    parser.add_argument("--async", dest="queue", action="store_true", help=async_help)


def check_output_options(options: dict[str, Any]) -> None:
    if options["csv"] and options["save"]:
        raise CommandError("--save stores a run of database bars; it cannot use --csv")
    if options["queue"] and not options["save"]:
        raise CommandError("--async queues a stored run: add --save")
    if options["queue"] and (options["json_out"] or options["html_out"]):
        raise CommandError("--async returns before the run ends: read its reports from the admin")


class RunConfigs(NamedTuple):
    """The file's config, the ``--symbol`` override (None without one) and the config to run."""

    file_config: StrategyConfig
    symbols: tuple[str, ...] | None
    config: StrategyConfig


def strategy_configs(options: dict[str, Any]) -> RunConfigs:
    file_config = config_load(options["config"])
    symbols = tuple(s.strip().upper() for s in options["symbol"] or ()) or None
    config = file_config.model_copy(update={"symbols": symbols}) if symbols else file_config
    return RunConfigs(file_config, symbols, config)


def period_and_costs(options: dict[str, Any]) -> dict[str, Any]:
    """``BacktestConfig`` keyword arguments from the period and cost flags."""
    return {
        "initial_capital": decimal_option(options["initial_capital"], "--initial-capital"),
        "commission_per_trade": decimal_option(options["commission"], "--commission"),
        "slippage_bps": decimal_option(options["slippage_bps"], "--slippage-bps"),
        "start_date": day_option(options["start"], "--start"),
        "end_date": day_option(options["end"], "--end", last=True),
    }


def csv_market_data(
    path: str, config: StrategyConfig, start: datetime | None, end: datetime | None
) -> MarketData:
    """One symbol's bars from a CSV/Parquet file (``--csv``), checked like imported bars."""
    import pandas as pd

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


class JobCommand(BaseCommand):
    """``run_backtest`` and ``walk_forward``: the output flags are checked and the strategy
    config read before ``run``; an ``ApplicationError`` is a ``CommandError`` with its message."""

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            check_output_options(options)
            self.run(options, strategy_configs(options))
        except ApplicationError as error:
            raise CommandError(error.message) from None

    def run(self, options: dict[str, Any], configs: RunConfigs) -> None:
        raise NotImplementedError

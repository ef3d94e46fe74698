"""``manage.py reconcile [--mode paper|live]``: compare our positions and open orders with the
broker's now, print the verdict, and fail (exit 1) on a mismatch or a broker error.

Without ``--mode`` it reconciles paper trading, and live trading too when
``ALPACA_LIVE_TRADING_ENABLED`` is set.
"""

from __future__ import annotations

from argparse import ArgumentParser
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from quant.errors import ApplicationError
from trading.brokers import broker_for_mode
from trading.models import TradingMode
from trading.services.reconcile import reconcile


class Command(BaseCommand):
    help = "Reconcile positions and open orders with the broker; exit 1 on any discrepancy."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--mode", choices=TradingMode.values, help="default: every enabled mode"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        modes = [options["mode"]] if options["mode"] else _enabled_modes()
        failed = [mode for mode in modes if not self._reconcile(mode)]
        if failed:
            raise CommandError(f"reconciliation failed for {', '.join(failed)}")

    def _reconcile(self, mode: str) -> bool:
        try:
            run = reconcile(mode=mode, broker=broker_for_mode(mode))
        except ApplicationError as error:
            self.stderr.write(f"{mode}: {error.message}")
            return False
        if run.error:
            self.stderr.write(f"{mode}: broker error: {run.error}")
            return False
        for change in run.repaired:
            self.stdout.write(
                f"{mode}: order {change['client_order_id']} brought up to date: "
                f"{change['from']} → {change['to']} (filled {change['filled']})"
            )
        if run.matched:
            self.stdout.write(f"{mode}: matched the broker ({run.broker})")
            return True
        self.stdout.write(f"{mode}: MISMATCH with the broker ({run.broker}); safe mode is on")
        for problem in run.discrepancies:
            self.stdout.write(f"  {describe(problem)}")
        return False


def _enabled_modes() -> list[str]:
    if settings.ALPACA_LIVE_TRADING_ENABLED:
        return [TradingMode.PAPER, TradingMode.LIVE]
    return [TradingMode.PAPER]


def describe(problem: dict[str, Any]) -> str:
    if problem["kind"] == "position":
        ours, theirs = _plain(problem["local"]), _plain(problem["broker"])
        return f"position {problem['symbol']}: ours {ours}, broker {theirs}"
    local = problem["local_status"] or "unknown here"
    return (
        f"order {problem['client_order_id']} ({problem['symbol']}): {problem['kind']}, "
        f"broker {problem['broker_status']}, ours {local}"
    )


def _plain(number: str) -> str:
    return format(Decimal(number).normalize(), "f")

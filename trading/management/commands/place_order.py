"""``manage.py place_order``: one manual order through the same path as the trading loop
(``order_submit``: risk gateway, broker, fills), printing where it ended up.

    manage.py place_order --strategy sma_crossover --symbol SPY --side buy --qty 10
    manage.py place_order --strategy 3 --symbol SPY --side sell --qty 5 --limit 450.10

The mode defaults to the strategy's (paper or live). The order service decides whether the
strategy may trade in that mode (a research strategy cannot trade; a strategy trades live only
once it was promoted to live), with the same message as the API. Exits 1 when the order is
refused, rejected, cancelled or expired.
"""

from __future__ import annotations

from argparse import ArgumentParser
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from quant.errors import ApplicationError
from quant.orders.fsm import OrderStatus
from research.models import Strategy
from trading.models import Order, OrderSide, OrderSource, TradingMode
from trading.services.submit import order_submit

FAILED = (OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.EXPIRED)


class Command(BaseCommand):
    help = "Place a manual order for a strategy and print its final status."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--strategy", required=True, help="strategy id or name")
        parser.add_argument("--symbol", required=True)
        parser.add_argument("--side", required=True, choices=OrderSide.values)
        parser.add_argument("--qty", required=True, help="quantity, e.g. 10 or 0.5")
        parser.add_argument("--limit", help="limit price (default: a market order)")
        parser.add_argument(
            "--mode", choices=TradingMode.values, help="default: the strategy's mode"
        )
        parser.add_argument("--stop-distance", help="price distance to the protective stop")
        parser.add_argument("--reason", default="manual order (place_order)")

    def handle(self, *args: Any, **options: Any) -> None:
        strategy = _strategy(options["strategy"])
        quantity = _positive(options["qty"], "--qty")
        limit = _optional(options["limit"], "--limit")
        try:
            order = order_submit(
                strategy=strategy,
                mode=options["mode"],
                symbol=options["symbol"],
                side=options["side"],
                quantity=quantity,
                order_type="limit" if limit is not None else "market",
                limit_price=limit,
                stop_distance=_optional(options["stop_distance"], "--stop-distance"),
                source=OrderSource.MANUAL,
                reason=options["reason"],
            )
        except ApplicationError as error:  # the API's code and message, word for word
            raise CommandError(f"{error.code}: {error.message}") from None
        self.stdout.write(outcome(order))
        if order.status in FAILED:
            reason = f": {order.reject_reason}" if order.reject_reason else ""
            raise CommandError(f"order {order.client_order_id} {order.status}{reason}")


def outcome(order: Order) -> str:
    filled = f"filled {_plain(order.filled_quantity)} of {_plain(order.quantity)}"
    if order.filled_quantity:
        filled += f" @ {_plain(order.avg_fill_price)}"
    return f"{order.client_order_id} {order.status}, {filled} ({order.mode}, {order.broker})"


def _strategy(value: str) -> Strategy:
    query = Q(name=value) | Q(pk=int(value)) if value.isdigit() else Q(name=value)
    matches = sorted(Strategy.objects.filter(query), key=lambda s: s.name != value)
    if not matches:
        raise CommandError(f"unknown strategy {value!r}: give its id or name")
    return matches[0]  # a name wins over an id


def _optional(value: str | None, flag: str) -> Decimal | None:
    return None if value is None else _positive(value, flag)


def _positive(value: str, flag: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise CommandError(f"{flag}: {value!r} is not a number") from None
    if not number.is_finite() or number <= 0:
        raise CommandError(f"{flag}: must be a positive number, got {value!r}")
    return number


def _plain(value: Decimal | None) -> str:
    return "-" if value is None else format(value.normalize(), "f")

"""Work one venue order against bars with the backtest's own ``ExecutionSimulator`` (no Django).

This is not a copy of the fill model: the order is handed to a fresh simulator through the
same ``submit`` / ``process`` calls the backtest engine makes, so fill prices (slippage, volume
impact), quantities per bar (``max_volume_participation``), limit/stop triggering (gaps
included) and commission are the backtest's to the last bit. Prices come back through the
engine's own float-to-Decimal edge (``results.price``); commission is the config's Decimal.

Two choices make the simulator a venue: the order goes in as an explicit-quantity entry, and
the simulator's cash is unlimited. Buying power is the venue's check when it accepts an order
(as at a broker); the backtest's all-in cash cap sizes backtest entries and does not shrink an
order a venue has already accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from quant.backtest.config import BacktestConfig
from quant.backtest.results import price as engine_price
from quant.backtest.simulator import ExecutionSimulator, WorkingOrder
from quant.strategies.base import OrderIntent, OrderRequest, OrderType, PriceBar, Side

ZERO = Decimal("0")
UNLIMITED_CASH = 1e15  # see the module docstring: the venue, not the simulator, checks cash
BPS = Decimal("10000")


@dataclass(frozen=True)
class OrderToWork:
    """What the simulator needs to know of one venue order."""

    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    filled: Decimal = ZERO
    triggered: bool = False


@dataclass(frozen=True)
class Execution:
    """One fill: whole shares at the simulator's price, on the bar that started at ``bar_ts``."""

    quantity: Decimal
    price: Decimal
    commission: Decimal
    bar_ts: datetime


@dataclass(frozen=True)
class WorkResult:
    executions: tuple[Execution, ...]
    triggered: bool  # a stop has fired: from now on it works as a market order
    done: bool  # nothing is left to fill
    rejected: str = ""  # the simulator refused the order (the venue validates first)


def work_order(
    order: OrderToWork,
    *,
    config: BacktestConfig,
    bars: Sequence[PriceBar],
    placed_on: PriceBar | None = None,
) -> WorkResult:
    """Work ``order`` against ``bars`` (finished bars, oldest first, all after the bar it was
    placed on).

    ``placed_on`` is given once, when the venue accepts the order: the latest finished bar at
    that moment. The order is submitted after it, as a backtest submits after a signal bar, so
    a market order fills on its close with ``FillAt.CLOSE``; anything else works from the next
    bar on. Later calls pass the bars that finished since, and the order's progress.
    """
    sim = ExecutionSimulator(config, (order.symbol,))
    sim.cash = UNLIMITED_CASH
    request = OrderRequest(
        order.symbol,
        order.side,
        OrderIntent.ENTRY,
        order.order_type,
        quantity=float(order.quantity),
        limit_price=_float(order.limit_price),
        stop_price=_float(order.stop_price),
    )
    fills = []
    if placed_on is not None:
        fills += sim.submit(request, 0, placed_on.ts, placed_on.close, placed_on.volume)
    else:
        started = order.filled > 0  # the simulator fixes an order's total at its first fill
        sim.working.append(
            WorkingOrder(
                1,
                request,
                0,
                triggered=order.triggered,
                total=float(order.quantity) if started else None,
                filled=float(order.filled),
            )
        )
    working = sim.working[0] if sim.working else None
    for index, bar in enumerate(bars, start=1):
        if not sim.working:
            break
        fills += sim.process(order.symbol, index, bar.ts, bar[2:])
    commission = config.commission_per_trade
    executions = tuple(
        Execution(Decimal(int(fill.quantity)), engine_price(fill.price), commission, fill.ts)
        for fill in fills
    )
    rejected = "; ".join(r.reason for r in sim.rejections)
    return WorkResult(
        executions=executions,
        triggered=working.triggered if working is not None else order.triggered,
        done=not sim.working,
        rejected=rejected,
    )


def buy_price_estimate(
    *,
    order_type: OrderType,
    last_close: Decimal,
    config: BacktestConfig,
    limit: Decimal | None = None,
    stop: Decimal | None = None,
) -> Decimal:
    """What a buy is expected to pay per share, for the buying-power check: a limit buy at
    most its limit, a stop buy its stop (or the last close above it) plus slippage, a market
    buy the last close plus slippage (a market fill on the latest bar)."""
    if order_type is OrderType.LIMIT and limit is not None:
        return limit
    base = (
        max(last_close, stop) if order_type is OrderType.STOP and stop is not None else last_close
    )
    return base * (1 + config.slippage_bps / BPS)


def _float(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None

"""The fill model and account: one implementation behind both backtest paths (and paper trading).

Rules (documented for users in the README):
- Market orders fill on the signal bar's close (``FillAt.CLOSE``) or the next bar's open
  (``FillAt.NEXT_OPEN``): buys at ``price * (1 + bps/10000)``, sells at ``price * (1 - bps/10000)``.
- Limit and stop orders placed at bar t work from bar t+1, good till filled or replaced by the
  strategy's next target change for the symbol. A buy limit fills at the open when the bar opens
  at or below the limit, else at the limit if the low reaches it (no slippage). A buy stop fills
  at the open when the bar gaps above the stop, else at the stop if the high reaches it, plus
  slippage. Sells mirror this.
- Every fill pays ``commission_per_trade``. Entry quantities are whole shares found at fill
  time from the fill price (all-in: ``floor((cash - commission) / fill_price)``).
- With ``max_volume_participation`` a fill takes at most that share of the bar's volume; the
  rest waits for later bars (partial fills). ``volume_impact_bps`` adds slippage in proportion
  to the share of the bar's volume taken.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from quant.backtest.config import BacktestConfig, FillAt
from quant.strategies.base import (
    Fill,
    OrderIntent,
    OrderRequest,
    OrderType,
    PortfolioSnapshot,
    PortfolioState,
    PositionState,
    Side,
    SizingMode,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SIGN = {Side.BUY: 1, Side.SELL: -1}
NOTHING_TO_EXIT = "nothing to exit"
TOO_SMALL = "order size is zero: not enough cash or equity for one share"


@dataclass(slots=True)
class WorkingOrder:
    order_id: int
    request: OrderRequest
    placed_at: int  # bar index of submission
    triggered: bool = False  # a stop that has fired works as a market order
    total: float | None = None  # quantity fixed at the first fill
    filled: float = 0.0


@dataclass
class OpenTrade:
    """Accumulates the fills of one position from flat back to flat."""

    direction: int  # +1 long, -1 short
    entry_index: int
    entry_ts: datetime
    entry_qty: float = 0.0
    entry_value: float = 0.0
    exit_qty: float = 0.0
    exit_value: float = 0.0
    commission: float = 0.0


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    symbol: str
    direction: int
    quantity: float
    entry_ts: datetime
    entry_price: float
    exit_ts: datetime
    exit_price: float
    commission: float
    pnl: float
    bars_held: int


class FillEvent(NamedTuple):
    """A fill with the account right after it (the vectorized path rebuilds equity from these)."""

    bar: int
    fill: Fill
    cash_after: float
    position_after: float


class Rejection(NamedTuple):
    bar: int
    symbol: str
    reason: str


class LivePortfolio:
    """``PortfolioState`` read straight from the simulator (valid during a strategy call)."""

    __slots__ = ("sim", "ts")

    def __init__(self, sim: ExecutionSimulator) -> None:
        self.sim = sim
        self.ts = EPOCH

    @property
    def cash(self) -> float:
        return self.sim.cash

    @property
    def equity(self) -> float:
        return self.sim.equity()

    @property
    def positions(self) -> Mapping[str, PositionState]:
        return self.sim._state_positions

    def quantity(self, symbol: str) -> float:
        return self.sim.positions.get(symbol, 0.0)


@dataclass
class ExecutionSimulator:
    config: BacktestConfig
    symbols: Sequence[str]
    cash: float = 0.0
    positions: dict[str, float] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)
    working: list[WorkingOrder] = field(default_factory=list)
    events: list[FillEvent] = field(default_factory=list)
    closed: list[ClosedTrade] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    open_trades: dict[str, OpenTrade] = field(default_factory=dict)
    traded_notional: float = 0.0

    def __post_init__(self) -> None:
        c = self.config
        self.cash = float(c.initial_capital)
        self.positions = dict.fromkeys(self.symbols, 0.0)
        self.marks = dict.fromkeys(self.symbols, 0.0)
        self.commission = float(c.commission_per_trade)
        self.slip = float(c.slippage_bps) / 10_000.0
        self.impact = float(c.volume_impact_bps) / 10_000.0
        cap = c.max_volume_participation
        self.participation = float(cap) if cap is not None else None
        self.fill_at_close = c.fill_at is FillAt.CLOSE
        self._next_id = 1
        self._state_positions: dict[str, PositionState] = {}
        self.live = LivePortfolio(self)

    # --- account ------------------------------------------------------------------------
    def equity(self) -> float:
        total = self.cash
        for symbol in self.symbols:
            total = total + self.positions[symbol] * self.marks[symbol]
        return total

    def gross_exposure(self) -> float:
        total = 0.0
        for symbol in self.symbols:
            total = total + abs(self.positions[symbol] * self.marks[symbol])
        return total

    def state(self, ts: datetime) -> PortfolioState:
        """The live view of the account at ``ts`` (the same object every bar: no allocation)."""
        self.live.ts = ts
        return self.live

    def snapshot(self, ts: datetime) -> PortfolioSnapshot:
        return PortfolioSnapshot(ts, self.cash, self.equity(), self._state_positions)

    # --- orders -------------------------------------------------------------------------
    @property
    def has_working(self) -> bool:
        return bool(self.working)

    def cancel_symbol(self, symbol: str) -> None:
        if self.working:
            self.working = [w for w in self.working if w.request.symbol != symbol]

    def submit(
        self, request: OrderRequest, index: int, ts: datetime, close: float, volume: float
    ) -> list[Fill]:
        """Accept an order after bar ``index`` closed; a CLOSE-timed market order fills now."""
        order = WorkingOrder(self._next_id, request, index)
        self._next_id += 1
        kind = request.order_type
        if kind is not OrderType.MARKET and (
            (kind is OrderType.LIMIT and request.limit_price is None)
            or (kind is OrderType.STOP and request.stop_price is None)
        ):
            self.rejections.append(
                Rejection(index, request.symbol, f"{request.order_type} order without its price")
            )
            return []
        if request.order_type is OrderType.MARKET and self.fill_at_close:
            fill = self._fill(order, index, ts, close, volume, True)
            if order.total is not None and order.filled < order.total:
                self.working.append(order)  # the rest of a partial fill waits for later bars
            return [fill] if fill else []
        self.working.append(order)
        return []

    def process(self, symbol: str, index: int, ts: datetime, bar: tuple[float, ...]) -> list[Fill]:
        """Work the symbol's resting orders against a new bar (open, high, low, close, volume)."""
        fills: list[Fill] = []
        open_, high, low, close, volume = bar
        keep: list[WorkingOrder] = []
        for order in self.working:
            request = order.request
            if request.symbol != symbol or order.placed_at >= index:
                keep.append(order)
                continue
            price, slipped = self._trigger(order, open_, high, low, close)
            fill = None
            if price is not None:
                fill = self._fill(order, index, ts, price, volume, slipped)
            if fill is not None:
                fills.append(fill)
            done = order.total is not None and order.filled >= order.total
            if not done and not (order.total is not None and order.total <= 0):
                keep.append(order)
        self.working = keep
        return fills

    def _trigger(
        self, order: WorkingOrder, open_: float, high: float, low: float, close: float
    ) -> tuple[float | None, bool]:
        request = order.request
        buy = request.side is Side.BUY
        if request.order_type is OrderType.MARKET or order.triggered:
            return (close if self.fill_at_close else open_), True
        if request.order_type is OrderType.LIMIT:
            limit = float(request.limit_price or 0.0)
            if buy:
                return (open_ if open_ <= limit else limit if low <= limit else None), False
            return (open_ if open_ >= limit else limit if high >= limit else None), False
        stop = float(request.stop_price or 0.0)
        if buy:
            hit = open_ if open_ >= stop else stop if high >= stop else None
        else:
            hit = open_ if open_ <= stop else stop if low <= stop else None
        if hit is not None:
            order.triggered = True
        return hit, True

    # --- fills --------------------------------------------------------------------------
    def _fill(
        self,
        order: WorkingOrder,
        index: int,
        ts: datetime,
        base: float,
        volume: float,
        slipped: bool,
    ) -> Fill | None:
        request = order.request
        sign = SIGN[request.side]
        held = self.positions[request.symbol]
        if request.intent is OrderIntent.ENTRY and held * sign < 0:
            order.total = 0.0
            self.rejections.append(
                Rejection(index, request.symbol, "entry against an open position: exit it first")
            )
            return None
        px = base * (1.0 + sign * self.slip) if slipped else base
        if order.total is None:
            order.total = self._quantity(request, px)
            if order.total <= 0:
                exiting = request.intent is OrderIntent.EXIT
                self.rejections.append(
                    Rejection(index, request.symbol, NOTHING_TO_EXIT if exiting else TOO_SMALL)
                )
                return None
        qty = order.total - order.filled
        if self.participation is not None:
            qty = min(qty, math.floor(volume * self.participation))
        unimpacted = px
        if qty > 0 and self.impact and volume > 0:
            px = unimpacted * (1.0 + sign * self.impact * qty / volume)
        if request.side is Side.BUY and request.intent is OrderIntent.ENTRY:
            affordable = math.floor((self.cash - self.commission) / px)
            if qty > affordable:
                qty = max(affordable, 0)
                order.total = order.filled + qty  # the rest can never be paid for
                if qty > 0 and self.impact and volume > 0:  # the impact of what is taken
                    px = unimpacted * (1.0 + sign * self.impact * qty / volume)
        if qty <= 0:
            return None
        order.filled += qty
        signed = sign * qty
        self.cash = self.cash + (-(signed * px) - self.commission)
        before = self.positions[request.symbol]
        after = before + signed
        self.positions[request.symbol] = after
        self.traded_notional += qty * px
        fill = Fill(
            request.symbol,
            request.side,
            qty,
            px,
            self.commission,
            ts,
            order.order_id,
            request.intent,
        )
        self._book(fill, index, before, after)
        self.events.append(FillEvent(index, fill, self.cash, after))
        return fill

    def _quantity(self, request: OrderRequest, px: float) -> float:
        if request.intent is OrderIntent.EXIT:
            return abs(self.positions[request.symbol])
        return entry_quantity(request, px, self.equity, self.cash, self.commission)

    def _book(self, fill: Fill, index: int, before: float, after: float) -> None:
        symbol = fill.symbol
        trade = self.open_trades.get(symbol)
        if trade is None:
            trade = OpenTrade(direction=1 if after > 0 else -1, entry_index=index, entry_ts=fill.ts)
            self.open_trades[symbol] = trade
        trade.commission += fill.commission
        if abs(after) > abs(before):
            trade.entry_qty += fill.quantity
            trade.entry_value += fill.quantity * fill.price
        else:
            trade.exit_qty += fill.quantity
            trade.exit_value += fill.quantity * fill.price
        if after == 0.0:
            del self.open_trades[symbol]
            entry_price = trade.entry_value / trade.entry_qty
            exit_price = trade.exit_value / trade.exit_qty
            gross = (trade.exit_value - trade.entry_value) * trade.direction
            self.closed.append(
                ClosedTrade(
                    symbol=symbol,
                    direction=trade.direction,
                    quantity=trade.entry_qty,
                    entry_ts=trade.entry_ts,
                    entry_price=entry_price,
                    exit_ts=fill.ts,
                    exit_price=exit_price,
                    commission=trade.commission,
                    pnl=gross - trade.commission,
                    bars_held=index - trade.entry_index,
                )
            )
            self._state_positions = {k: v for k, v in self._state_positions.items() if k != symbol}
        else:
            self._state_positions = {
                **self._state_positions,
                symbol: PositionState(symbol, after, trade.entry_value / trade.entry_qty),
            }


def entry_quantity(
    request: OrderRequest,
    px: float,
    equity: Callable[[], float],
    cash: float,
    commission: float,
) -> float:
    """Whole shares of an entry at price ``px`` under its sizing (paper and live use it too).

    ``equity`` is a callable: only the percent and risk modes need it, and it costs a loop."""
    if request.quantity is not None:
        return float(math.floor(request.quantity))
    sizing = request.sizing
    if sizing is None:
        return 0.0
    if sizing.mode is SizingMode.FIXED:
        return float(math.floor(sizing.quantity))
    total = equity()
    if sizing.mode is SizingMode.PERCENT:
        budget = total * sizing.percent / 100.0
        if request.side is Side.BUY:
            budget = min(budget, cash)
        return float(max(math.floor((budget - commission) / px), 0))
    distance = request.stop_distance or px * sizing.stop_pct / 100.0
    return float(max(math.floor(total * sizing.risk_pct / 100.0 / distance), 0))

"""The strategy plugin interface, free of Django, shared by backtests, paper and live trading.

A strategy sees the market one bar at a time through ``on_market_data`` (it cannot see a bar
before the engine hands it over) and answers ``generate_signals`` with *targets*: long, flat or
short per symbol. The engine acts only when a symbol's target changes. ``risk_check`` turns
those signals into orders; the default sizes them from the config's sizing section.

A strategy may also implement ``signals_frame``: the same targets computed over whole arrays
at once. The vectorized backtest path uses it and must then produce exactly the trades of the
event-driven path (tests check this for every built-in strategy). That path still calls
``risk_check`` and ``on_fill`` at every change of target, but never ``on_market_data`` or
``daily_close``: a strategy whose targets depend on those belongs on the event-driven path.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from quant.strategies.config import StrategyConfig

INTERFACE_VERSION = 1

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class Side(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class OrderType(enum.StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"


class Target(enum.IntEnum):
    """The position a strategy wants in a symbol."""

    SHORT = -1
    FLAT = 0
    LONG = 1


class PriceBar(NamedTuple):
    """One OHLCV bar as a strategy sees it (float64 analytics values; ``ts`` is the bar start).

    Values (Signal, OrderRequest, Fill...) are NamedTuples: immutable and cheap to make, which
    matters a million times per run."""

    symbol: str
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


class Signal(NamedTuple):
    """A strategy's wish for one symbol. ``stop_distance`` (price units) feeds risk sizing."""

    symbol: str
    target: Target
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    stop_price: float | None = None
    stop_distance: float | None = None
    reason: str = ""


class SizingMode(enum.StrEnum):
    FIXED = "fixed"  # a fixed number of shares
    PERCENT = "percent"  # a share of equity; 100 = all-in
    RISK = "risk"  # risk a share of equity over a stop distance


@dataclass(frozen=True, slots=True)
class Sizing:
    """How an entry's quantity is found; resolved at fill time against the fill price."""

    mode: SizingMode = SizingMode.PERCENT
    quantity: float = 0.0  # FIXED
    percent: float = 100.0  # PERCENT: share of equity, in %
    risk_pct: float = 1.0  # RISK: share of equity lost if the stop is hit, in %
    stop_pct: float = 2.0  # RISK: stop distance in % of price when a signal names none


class OrderIntent(enum.StrEnum):
    ENTRY = "entry"  # open (or add to) a position, sized at fill time
    EXIT = "exit"  # close the whole position in the symbol


class OrderRequest(NamedTuple):
    """An order a strategy asks for. Entries carry a ``Sizing``, exits close the position."""

    symbol: str
    side: Side
    intent: OrderIntent
    order_type: OrderType = OrderType.MARKET
    sizing: Sizing | None = None
    quantity: float | None = None  # explicit quantity; overrides sizing
    limit_price: float | None = None
    stop_price: float | None = None
    stop_distance: float | None = None
    reason: str = ""


class Fill(NamedTuple):
    symbol: str
    side: Side
    quantity: float
    price: float
    commission: float
    ts: datetime
    order_id: int
    intent: OrderIntent


class PositionState(NamedTuple):
    symbol: str
    quantity: float  # signed: > 0 long, < 0 short
    avg_price: float


class PortfolioState(Protocol):
    """What a strategy may know about its account at the current bar.

    Engines pass a live view (read it during the call; it moves on with the run);
    ``PortfolioSnapshot`` is a frozen copy with the same attributes.
    """

    @property
    def ts(self) -> datetime: ...

    @property
    def cash(self) -> float: ...

    @property
    def equity(self) -> float: ...

    @property
    def positions(self) -> Mapping[str, PositionState]: ...

    def quantity(self, symbol: str) -> float: ...


@dataclass(frozen=True, slots=True)
class PortfolioSnapshot:
    ts: datetime
    cash: float
    equity: float
    positions: Mapping[str, PositionState] = field(default_factory=dict)

    def quantity(self, symbol: str) -> float:
        position = self.positions.get(symbol)
        return position.quantity if position else 0.0


class StrategyParams(BaseModel):
    """Base of every strategy's typed parameters: unknown keys are errors, values are checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Strategy(ABC):
    """Base class of every strategy. Subclasses set ``name`` and ``Params`` and register."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    interface_version: ClassVar[int] = INTERFACE_VERSION
    Params: ClassVar[type[StrategyParams]] = StrategyParams

    def __init__(self, params: StrategyParams | Mapping[str, Any] | None = None) -> None:
        if isinstance(params, StrategyParams):
            self.params = params
        else:
            self.params = self.Params.model_validate(dict(params or {}))
        self.symbols: tuple[str, ...] = ()
        self.sizing = Sizing()
        self.allow_short = False

    # --- lifecycle ---------------------------------------------------------------------
    def initialize(self, config: StrategyConfig) -> None:
        """Take the run's symbols and sizing; reset any state from an earlier run."""
        self.symbols = tuple(config.symbols)
        self.sizing = config.sizing.to_sizing()
        self.allow_short = config.allow_short
        self.reset()

    def reset(self) -> None:  # noqa: B027 - optional hook
        """Forget market state (indicators, last bars). Called by ``initialize``."""

    @abstractmethod
    def on_market_data(self, bar: PriceBar) -> None:
        """Take the next bar of one symbol; bars arrive in time order."""

    @abstractmethod
    def generate_signals(self, state: PortfolioState) -> list[Signal]:
        """The targets wanted after the bars seen so far (the engine acts on changes)."""

    def risk_check(
        self, signals: Sequence[Signal], portfolio: PortfolioState
    ) -> list[OrderRequest]:
        """Turn target changes into orders: exit what must go, then enter with the sizing."""
        orders: list[OrderRequest] = []
        allow_short, sizing = self.allow_short, self.sizing
        for signal in signals:
            # positional NamedTuples: this runs once per target change, tens of thousands of times
            symbol, target, order_type, limit, stop, distance, reason = signal
            held = portfolio.quantity(symbol)
            wanted = target if allow_short or target > 0 else Target.FLAT
            if held and (wanted == Target.FLAT or (held > 0) != (wanted > 0)):
                side = Side.SELL if held > 0 else Side.BUY
                orders.append(
                    OrderRequest(
                        symbol,
                        side,
                        OrderIntent.EXIT,
                        order_type,
                        None,
                        None,
                        limit,
                        stop,
                        None,
                        reason,
                    )
                )
                held = 0.0
            if wanted != Target.FLAT and not held:
                side = Side.BUY if wanted > 0 else Side.SELL
                orders.append(
                    OrderRequest(
                        symbol,
                        side,
                        OrderIntent.ENTRY,
                        order_type,
                        sizing,
                        None,
                        limit,
                        stop,
                        distance,
                        reason,
                    )
                )
        return orders

    def on_fill(self, fill: Fill) -> None:  # noqa: B027 - optional hook
        """Called for every fill of this strategy's orders."""

    def daily_close(self) -> None:  # noqa: B027 - optional hook
        """Called after the last bar of each trading session."""

    # --- vectorized path ---------------------------------------------------------------
    supports_vectorized: ClassVar[bool] = False

    def signals_frame(self, bars: Mapping[str, Mapping[str, FloatArray]]) -> dict[str, FloatArray]:
        """Targets per symbol over whole arrays (NaN = no signal at that bar).

        ``bars[symbol]`` holds ``open high low close volume`` arrays aligned on the run's
        timeline, NaN where the symbol has no bar. Value at index i may use data up to i only.
        """
        raise NotImplementedError(f"strategy {self.name!r} has no vectorized form")

"""What a backtest produces: trades, fills, equity curve, open positions and metrics."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar, overload

import numpy as np
import numpy.typing as npt
import pandas as pd

from quant.backtest.config import BacktestConfig

R = TypeVar("R")
CENT = Decimal("0.01")
PRICE = Decimal("0.000001")


def money(value: float) -> Decimal:
    """A float amount as Decimal cents (the engine's edge back to exact money)."""
    return Decimal(repr(float(value))).quantize(CENT)


def _plain(value: Decimal) -> Decimal:
    """Without trailing zeros, yet never in exponent form (100, not 1E+2)."""
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


def price(value: float) -> Decimal:
    return _plain(Decimal(repr(float(value))).quantize(PRICE))


def quantity(value: float) -> Decimal:
    return _plain(Decimal(repr(float(value))))


@dataclass(frozen=True)
class Trade:
    """A round trip: a position opened from flat and closed back to flat."""

    symbol: str
    side: str  # "long" or "short"
    quantity: Decimal
    entry_time: datetime
    entry_price: Decimal  # average over the entry fills
    exit_time: datetime
    exit_price: Decimal  # average over the exit fills
    commission: Decimal  # entry and exit fills together
    pnl: Decimal  # (exit - entry) * quantity * direction - commission
    bars_held: int

    @property
    def return_pct(self) -> Decimal:
        cost = self.entry_price * self.quantity
        return (self.pnl / cost * 100).quantize(Decimal("0.0001")) if cost else Decimal(0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "side": self.side,
            "quantity": str(self.quantity),
            "entry_time": self.entry_time.isoformat(),
            "entry_price": str(self.entry_price),
            "exit_time": self.exit_time.isoformat(),
            "exit_price": str(self.exit_price),
            "commission": str(self.commission),
            "pnl": str(self.pnl),
            "return_pct": str(self.return_pct),
            "bars_held": self.bars_held,
        }


@dataclass(frozen=True)
class FillRecord:
    symbol: str
    side: str  # "buy" / "sell"
    quantity: Decimal
    price: Decimal
    commission: Decimal
    ts: datetime
    intent: str  # "entry" / "exit"
    order_id: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "side": self.side,
            "quantity": str(self.quantity),
            "price": str(self.price),
            "commission": str(self.commission),
            "ts": self.ts.isoformat(),
            "intent": self.intent,
            "order_id": self.order_id,
        }


class LazyRecords(Sequence[R]):
    """A list made on first use: converting every fill to Decimal costs more than a whole
    vectorized run of a million bars, and many callers never look at the fills."""

    def __init__(self, make: Callable[[], list[R]]) -> None:
        self._make: Callable[[], list[R]] | None = make
        self._items: list[R] = []

    def _list(self) -> list[R]:
        if self._make is not None:
            self._items, self._make = self._make(), None
        return self._items

    @overload
    def __getitem__(self, index: int) -> R: ...

    @overload
    def __getitem__(self, index: slice) -> list[R]: ...

    def __getitem__(self, index: int | slice) -> R | list[R]:
        return self._list()[index]

    def __len__(self) -> int:
        return len(self._list())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return self._list() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._list())


@dataclass(frozen=True)
class OpenPosition:
    """A position still open at the end, valued at the last close."""

    symbol: str
    side: str
    quantity: Decimal
    entry_time: datetime
    entry_price: Decimal
    last_price: Decimal
    market_value: Decimal  # signed: negative for a short
    unrealized_pnl: Decimal  # after the entry commission

    def as_dict(self) -> dict[str, Any]:
        return {
            k: (v.isoformat() if isinstance(v, datetime) else str(v))
            for k, v in self.__dict__.items()
        }


@dataclass(frozen=True)
class PerformanceMetrics:
    """The spec's metrics plus Sortino, CAGR, exposure and turnover (percent fields in %)."""

    total_return: Decimal
    total_return_pct: Decimal
    sharpe_ratio: Decimal | None  # annualized, risk-free rate 0
    max_drawdown: Decimal  # largest peak-to-trough fall in money (>= 0)
    max_drawdown_pct: Decimal  # the same in % of the peak (>= 0)
    win_rate: Decimal  # % of closed trades with pnl > 0
    total_trades: int
    winning_trades: int
    losing_trades: int
    avg_win: Decimal | None
    avg_loss: Decimal | None  # negative
    profit_factor: Decimal | None  # gross profit / gross loss; None without losses
    sortino_ratio: Decimal | None
    cagr_pct: Decimal | None
    exposure_pct: Decimal  # % of bars with an open position
    turnover: Decimal  # traded notional / average equity
    final_equity: Decimal
    periods_per_year: Decimal

    def as_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in self.__dict__.items()}


@dataclass
class EquityCurve:
    """Per-bar account values on the run's timeline (arrays: cheap at a million bars)."""

    ts: npt.NDArray[np.datetime64]
    equity: npt.NDArray[np.float64]
    cash: npt.NDArray[np.float64]
    gross_exposure: npt.NDArray[np.float64]  # sum of |position value| per bar

    def __len__(self) -> int:
        return len(self.ts)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"equity": self.equity, "cash": self.cash, "gross_exposure": self.gross_exposure},
            index=pd.DatetimeIndex(self.ts, tz="UTC", name="ts"),
        )

    def drawdown(self) -> npt.NDArray[np.float64]:
        """Fall from the running peak, in money (<= 0)."""
        if not len(self.equity):
            return self.equity.copy()
        result: npt.NDArray[np.float64] = self.equity - np.maximum.accumulate(self.equity)
        return result

    def points(self) -> Iterator[dict[str, Any]]:
        for ts, equity, cash in zip(
            pd.DatetimeIndex(self.ts, tz="UTC"), self.equity, self.cash, strict=True
        ):
            yield {"ts": ts.isoformat(), "equity": str(money(equity)), "cash": str(money(cash))}


@dataclass
class BacktestResult:
    strategy_id: str
    config: BacktestConfig
    strategy_config: dict[str, Any]
    equity_curve: EquityCurve
    trades: list[Trade]
    fills: Sequence[FillRecord]
    open_positions: list[OpenPosition]
    metrics: PerformanceMetrics
    start_time: datetime | None
    end_time: datetime | None
    metadata: dict[str, Any] = field(default_factory=dict)
    # close per symbol on the equity curve's timeline (NaN where the symbol had no bar)
    closes: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    backtest_id: uuid.UUID = field(default_factory=uuid.uuid4)

    @property
    def final_equity(self) -> Decimal:
        return self.metrics.final_equity

"""The values the risk gateway reads and answers with, and how its messages show numbers.

Free of Django. All money, prices, quantities and percentages are ``Decimal``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from quant.errors import ValidationError
from quant.risk.limits import HUNDRED, RiskLimits

CENT = Decimal("0.01")
ZERO = Decimal(0)


@dataclass(frozen=True)
class OrderProposal:
    """An order as the gateway sees it; ``opening`` is True when it increases |position|."""

    strategy_id: int | None
    symbol: str
    side: str
    quantity: Decimal
    reference_price: Decimal  # the limit price, or the last price for a market order
    stop_distance: Decimal | None = None
    opening: bool = True

    def __post_init__(self) -> None:
        if self.side not in ("buy", "sell"):
            raise ValidationError(f"side: expected 'buy' or 'sell', got {self.side!r}")
        if self.quantity <= 0:
            raise ValidationError(f"quantity: must be > 0, got {self.quantity}")
        if self.reference_price <= 0:
            raise ValidationError(f"reference_price: must be > 0, got {self.reference_price}")
        if self.stop_distance is not None and self.stop_distance <= 0:
            raise ValidationError(f"stop_distance: must be > 0, got {self.stop_distance}")

    @property
    def notional(self) -> Decimal:
        return self.quantity * self.reference_price


@dataclass(frozen=True)
class PortfolioView:
    equity: Decimal
    opening_equity: Decimal  # at the start of the session
    high_water_mark: Decimal
    cash: Decimal
    deployed: Decimal  # gross market value of the positions
    open_positions: int  # symbols with a non-zero position
    holds_symbol: bool = False  # the order's symbol is one of them


@dataclass(frozen=True)
class StrategyView:
    allocation: Decimal  # capital allocated to the strategy
    equity: Decimal
    high_water_mark: Decimal
    session_pnl: Decimal
    deployed: Decimal


@dataclass(frozen=True)
class MarketView:
    """What is known of the symbol's market; None when unknown."""

    last_price: Decimal | None = None
    average_daily_volume: Decimal | None = None
    average_daily_dollar_volume: Decimal | None = None


@dataclass(frozen=True)
class RiskVerdict:
    """The gateway's answer for one order: approved, or the check that refused it and its
    reason (stored with the order verbatim); the reference price the check used."""

    approved: bool
    reason: str = ""
    check: str = ""
    reference_price: Decimal | None = None


@dataclass(frozen=True)
class KillSwitchView:
    global_active: bool = False
    strategy_active: bool = False
    global_reason: str = ""
    strategy_reason: str = ""


@dataclass(frozen=True)
class RiskDecision:
    approved: bool
    check: str  # the failing check ("" when approved)
    reason: str  # shown verbatim to the user
    details: dict[str, str] = field(default_factory=dict)


APPROVED = RiskDecision(approved=True, check="", reason="Approved")


def stop_distance_for(price: Decimal, stop: Decimal | None, limits: RiskLimits) -> Decimal:
    """The order's stop distance, or the default percentage of its price."""
    return stop if stop is not None else price * limits.default_stop_pct / HUNDRED


# --- formatting -----------------------------------------------------------------------------


def pct(value: Decimal) -> str:
    return f"{value.quantize(CENT, rounding=ROUND_HALF_UP)}%"


def money(value: Decimal) -> str:
    rounded = value.quantize(CENT, rounding=ROUND_HALF_UP)
    return f"-${-rounded:,.2f}" if rounded < 0 else f"${rounded:,.2f}"


def shown(value: Decimal, limit: Decimal, *, below: bool = False) -> Decimal:
    """``value`` to two decimals, rounded away from ``limit`` when plain rounding would hide
    the breach (2.004% > 2.00% shows as 2.01%, never as 2.00%)."""
    plain, cap = (v.quantize(CENT, rounding=ROUND_HALF_UP) for v in (value, limit))
    if below and plain >= cap:
        return value.quantize(CENT, rounding=ROUND_FLOOR)
    if not below and plain <= cap:
        return value.quantize(CENT, rounding=ROUND_CEILING)
    return plain


def pct_over(value: Decimal, limit: Decimal) -> str:
    return f"{pct(shown(value, limit))} > {pct(limit)}"


def money_over(value: Decimal, limit: Decimal) -> str:
    return f"{money(shown(value, limit))} > {money(limit)}"


def money_under(value: Decimal, limit: Decimal) -> str:
    return f"{money(shown(value, limit, below=True))} < {money(limit)}"


def qty(value: Decimal) -> str:
    """A quantity without exponent or trailing zeros, with thousands separators."""
    normal = value.normalize()
    if normal == normal.to_integral_value():
        return f"{int(normal):,}"
    return f"{normal:,f}"


def ratio_pct(part: Decimal, whole: Decimal) -> Decimal:
    return part * HUNDRED / whole if whole else ZERO

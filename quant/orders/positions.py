"""Position arithmetic: a position is the running sum of its fills (average-cost method)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

ZERO = Decimal("0")
PRICE_PLACES = Decimal("0.00000001")


@dataclass(frozen=True)
class PositionBook:
    """Signed quantity (> 0 long, < 0 short), average entry price and realized P&L."""

    quantity: Decimal = ZERO
    avg_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO

    def apply(
        self, *, side: str, quantity: Decimal, price: Decimal, commission: Decimal = ZERO
    ) -> PositionBook:
        """The position after one fill; commission is charged to realized P&L."""
        if quantity <= 0:
            raise ValueError(f"fill quantity must be positive, got {quantity}")
        signed = quantity if side == "buy" else -quantity
        held, avg = self.quantity, self.avg_price
        realized = self.realized_pnl - commission
        after = held + signed
        if held == 0 or (held > 0) == (signed > 0):  # opening or adding
            new_avg = (abs(held) * avg + quantity * price) / abs(after)
            return PositionBook(after, new_avg.quantize(PRICE_PLACES), realized)
        closed = min(abs(held), quantity)
        direction = 1 if held > 0 else -1
        realized += (price - avg) * closed * direction
        if after == 0:
            return PositionBook(ZERO, ZERO, realized)
        if (after > 0) == (held > 0):  # reduced, same side: the average stays
            return PositionBook(after, avg, realized)
        return PositionBook(after, price, realized)  # crossed through zero: the rest opens at price


def closed_quantity(held: Decimal, side: str, quantity: Decimal) -> Decimal:
    """How much of a fill of ``quantity`` on ``side`` reduces the position ``held``."""
    signed = quantity if side == "buy" else -quantity
    if held == 0 or (held > 0) == (signed > 0):
        return ZERO
    return min(abs(held), quantity)


def fill_increment(
    *,
    filled_before: Decimal,
    avg_before: Decimal | None,
    filled_after: Decimal,
    avg_after: Decimal | None,
) -> tuple[Decimal, Decimal] | None:
    """(quantity, price) of the fill that moved cumulative (filled, avg) from before to after.

    Brokers report cumulative filled quantity and average price; the fill between two reports
    is their difference. None when nothing new was filled (a repeated or an older report).
    """
    delta = filled_after - filled_before
    if delta <= 0:
        return None
    if avg_after is None:
        raise ValueError("a report with filled quantity must carry its average price")
    value = filled_after * avg_after - filled_before * (avg_before or ZERO)
    return delta, (value / delta).quantize(PRICE_PLACES)

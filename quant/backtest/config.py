"""Backtest configuration: capital, costs and the fill model's choices (spec section 4)."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from quant.errors import ValidationError


class FillAt(enum.StrEnum):
    CLOSE = "close"  # fill on the bar whose close produced the signal (spec default)
    NEXT_OPEN = "next_open"  # fill at the next bar's open


@dataclass(frozen=True)
class BacktestConfig:
    """Costs and fill rules of one run. Money is Decimal here; the inner loop uses float64.

    ``max_volume_participation`` caps each fill at that share of the bar's volume (the rest
    fills on later bars: partial fills); ``volume_impact_bps`` adds slippage in proportion to
    the share of volume taken (at 100% of the bar's volume the full figure is added).
    """

    initial_capital: Decimal = Decimal("100000")
    commission_per_trade: Decimal = Decimal("1.00")
    slippage_bps: Decimal = Decimal("10")
    start_date: datetime | None = None
    end_date: datetime | None = None
    fill_at: FillAt = FillAt.CLOSE
    max_volume_participation: Decimal | None = None
    volume_impact_bps: Decimal = Decimal("0")
    timeframe: str = "1Day"

    def __post_init__(self) -> None:
        problems = []
        valid: dict[str, Decimal] = {}  # only these may be compared (NaN or text would raise)
        for name in (
            "initial_capital",
            "commission_per_trade",
            "slippage_bps",
            "volume_impact_bps",
        ):
            value = getattr(self, name)
            try:
                decimal = Decimal(str(value))
            except InvalidOperation:
                problems.append(f"{name}: {value!r} is not a number")
                continue
            object.__setattr__(self, name, decimal)
            if not decimal.is_finite() or decimal < 0:
                problems.append(f"{name}: must be a finite number >= 0, got {value}")
            else:
                valid[name] = decimal
        if "initial_capital" in valid and valid["initial_capital"] <= 0:
            problems.append("initial_capital: must be > 0")
        if "slippage_bps" in valid and valid["slippage_bps"] >= 10_000:
            problems.append("slippage_bps: must be below 10000 (100%)")
        cap = self.max_volume_participation
        if cap is not None:
            try:
                cap = Decimal(str(cap))
            except InvalidOperation:
                problems.append(f"max_volume_participation: {cap!r} is not a number")
            else:
                object.__setattr__(self, "max_volume_participation", cap)
                if not (cap.is_finite() and 0 < cap <= 1):
                    problems.append("max_volume_participation: must be in (0, 1]")
        try:
            object.__setattr__(self, "fill_at", FillAt(self.fill_at))
        except ValueError:
            problems.append(f"fill_at: must be one of {', '.join(FillAt)}, got {self.fill_at!r}")
        for name in ("start_date", "end_date"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                problems.append(f"{name}: must carry a timezone")
        if self.start_date and self.end_date and self.start_date > self.end_date:
            problems.append(
                f"start_date {self.start_date:%Y-%m-%d} is after end_date {self.end_date:%Y-%m-%d}"
            )
        if problems:
            raise ValidationError(
                "backtest config: " + "; ".join(problems), details={"problems": problems}
            )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, Decimal):
                data[key] = str(value)
            elif isinstance(value, datetime):
                data[key] = value.isoformat()
            elif isinstance(value, enum.Enum):
                data[key] = value.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BacktestConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValidationError(f"backtest config: unknown keys {', '.join(unknown)}")
        values = dict(data)
        for name in ("start_date", "end_date"):
            if isinstance(values.get(name), str):
                values[name] = datetime.fromisoformat(values[name])
        return cls(**values)

"""Risk limits as values (spec section 6), free of Django.

``RiskLimits`` holds the platform's order- and portfolio-level limits, ``StrategyLimits`` one
strategy's. Both validate on construction and name the bad field. ``effective_limits`` merges
a strategy config's ``risk:`` overrides into them: an override may only tighten a limit (the
stricter value wins); loosening one takes a limit change approved in the database.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from quant.errors import ValidationError

if TYPE_CHECKING:
    from quant.strategies.config import RiskOverrides

Kind = Literal["pct", "positive", "non_negative", "count"]
Stricter = Literal["lower", "higher"]

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class LimitField:
    """How one limit is validated and which direction is the stricter one."""

    kind: Kind
    stricter: Stricter = "lower"


# Every limit by name. "higher is stricter" for minimums (min price, min liquidity) and for the
# stop distance assumed when an order names none (a wider stop means more risk is counted).
PLATFORM_FIELDS: dict[str, LimitField] = {
    "max_risk_per_trade_pct": LimitField("pct"),
    "max_notional_per_trade": LimitField("positive"),
    "max_price_deviation_pct": LimitField("pct"),
    "min_price": LimitField("non_negative", "higher"),
    "max_adv_pct": LimitField("pct"),
    "default_stop_pct": LimitField("pct", "higher"),
    "max_daily_drawdown_pct": LimitField("pct"),
    "max_total_drawdown_pct": LimitField("pct"),
    "max_capital_deployed_pct": LimitField("pct"),
    "max_open_positions": LimitField("count"),
}
STRATEGY_FIELDS: dict[str, LimitField] = {
    "max_allocation_pct": LimitField("pct"),
    "max_drawdown_pct": LimitField("pct"),
    "max_daily_loss_pct": LimitField("pct"),
    "min_liquidity": LimitField("non_negative", "higher"),
}

# A strategy config's ``risk:`` key -> (which limits, which field). The config says
# ``max_position_notional``; the platform limit is ``max_notional_per_trade``.
OVERRIDE_TARGETS: dict[str, tuple[Literal["platform", "strategy"], str]] = {
    "max_risk_per_trade_pct": ("platform", "max_risk_per_trade_pct"),
    "max_position_notional": ("platform", "max_notional_per_trade"),
    "max_price_deviation_pct": ("platform", "max_price_deviation_pct"),
    "min_price": ("platform", "min_price"),
    "max_adv_pct": ("platform", "max_adv_pct"),
    "max_allocation_pct": ("strategy", "max_allocation_pct"),
    "max_drawdown_pct": ("strategy", "max_drawdown_pct"),
    "max_daily_loss_pct": ("strategy", "max_daily_loss_pct"),
    "min_liquidity": ("strategy", "min_liquidity"),
}


def limit_value(name: str, value: Any, spec: LimitField) -> Decimal | int:
    """``value`` as the limit's type (Decimal, or int for counts), or a ValidationError naming it."""
    if isinstance(value, bool) or value is None:
        raise ValidationError(f"{name}: expected a number, got {value!r}", details={"field": name})
    try:
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise ValidationError(
            f"{name}: expected a number, got {value!r}", details={"field": name}
        ) from None
    if not number.is_finite():
        raise ValidationError(f"{name}: must be a finite number", details={"field": name})
    if spec.kind == "count":
        if number != number.to_integral_value() or number < 1:
            raise ValidationError(
                f"{name}: must be a whole number >= 1, got {value}", details={"field": name}
            )
        return int(number)
    if spec.kind == "pct" and not 0 < number <= HUNDRED:
        raise ValidationError(
            f"{name}: must be a percentage > 0 and <= 100, got {value}", details={"field": name}
        )
    if spec.kind == "positive" and number <= 0:
        raise ValidationError(f"{name}: must be > 0, got {value}", details={"field": name})
    if spec.kind == "non_negative" and number < 0:
        raise ValidationError(f"{name}: must be >= 0, got {value}", details={"field": name})
    return number


class _Validated:
    """Coerces and checks every field after construction (frozen dataclasses)."""

    _FIELDS: ClassVar[dict[str, LimitField]] = {}

    def __post_init__(self) -> None:
        for name, spec in self._FIELDS.items():
            object.__setattr__(self, name, limit_value(name, getattr(self, name), spec))

    def as_dict(self) -> dict[str, Decimal | int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class RiskLimits(_Validated):
    """Platform limits; the defaults are the spec's."""

    _FIELDS = PLATFORM_FIELDS

    max_risk_per_trade_pct: Decimal = Decimal("2.0")
    max_notional_per_trade: Decimal = Decimal("25000")
    max_price_deviation_pct: Decimal = Decimal("5.0")
    min_price: Decimal = Decimal("5.00")
    max_adv_pct: Decimal = Decimal("10.0")
    default_stop_pct: Decimal = Decimal("2.0")
    max_daily_drawdown_pct: Decimal = Decimal("3.0")
    max_total_drawdown_pct: Decimal = Decimal("10.0")
    max_capital_deployed_pct: Decimal = Decimal("80.0")
    max_open_positions: int = 20


@dataclass(frozen=True)
class StrategyLimits(_Validated):
    """One strategy's limits; drawdown and daily loss are percentages of its allocation."""

    _FIELDS = STRATEGY_FIELDS

    max_allocation_pct: Decimal = Decimal("100")
    max_drawdown_pct: Decimal = Decimal("10")
    max_daily_loss_pct: Decimal = Decimal("2")
    min_liquidity: Decimal = Decimal("500000")


def stricter(spec: LimitField, current: Any, proposed: Any) -> Any:
    """The stricter of two values of one limit."""
    if spec.stricter == "lower":
        return min(current, proposed)
    return max(current, proposed)


def effective_limits(
    platform: RiskLimits,
    strategy_limits: StrategyLimits,
    overrides: RiskOverrides | None,
) -> tuple[RiskLimits, StrategyLimits]:
    """The limits one strategy trades under: its config's overrides applied, tighten-only.

    An override looser than the stored limit is ignored (the stored limit stands); loosening
    takes an approved ``RiskLimitChange``.
    """
    if overrides is None:
        return platform, strategy_limits
    changes: dict[str, dict[str, Any]] = {"platform": {}, "strategy": {}}
    for key, (target, name) in OVERRIDE_TARGETS.items():
        raw = getattr(overrides, key, None)
        if raw is None:
            continue
        base = platform if target == "platform" else strategy_limits
        spec = (PLATFORM_FIELDS if target == "platform" else STRATEGY_FIELDS)[name]
        value = limit_value(f"risk.{key}", raw, spec)
        changes[target][name] = stricter(spec, getattr(base, name), value)
    return replace(platform, **changes["platform"]), replace(strategy_limits, **changes["strategy"])

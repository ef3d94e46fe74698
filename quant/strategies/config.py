"""Strategy configs (YAML in ``configs/strategies/``), validated with every bad field named.

```yaml
name: sma_crossover_spy          # unique config name
class: sma_crossover             # a registered strategy class
symbols: [SPY]
timeframe: 1Day
allow_short: false
params: {fast: 10, slow: 30}     # checked against the class's typed Params
sizing: {mode: percent, percent: 100}
risk: {max_position_notional: 25000}   # optional overrides of the risk limits
```
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from quant.errors import ValidationError
from quant.strategies.base import Sizing, SizingMode, Strategy
from quant.strategies.registry import did_you_mean, strategy_class

TIMEFRAMES = ("1Min", "5Min", "15Min", "1Hour", "1Day")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SizingConfig(_Strict):
    mode: SizingMode = SizingMode.PERCENT
    quantity: float = Field(default=0.0, ge=0)
    percent: float = Field(default=100.0, gt=0, le=100)
    risk_pct: float = Field(default=1.0, gt=0, le=100)
    stop_pct: float = Field(default=2.0, gt=0, lt=100)

    @model_validator(mode="after")
    def _fixed_needs_quantity(self) -> SizingConfig:
        if self.mode is SizingMode.FIXED and self.quantity <= 0:
            raise ValueError("fixed sizing needs a quantity > 0")
        return self

    def to_sizing(self) -> Sizing:
        return Sizing(
            mode=self.mode,
            quantity=self.quantity,
            percent=self.percent,
            risk_pct=self.risk_pct,
            stop_pct=self.stop_pct,
        )


class RiskOverrides(_Strict):
    """Per-strategy overrides of the risk limits (spec section 6); unset = platform default."""

    max_risk_per_trade_pct: float | None = Field(default=None, gt=0, le=100)
    max_position_notional: float | None = Field(default=None, gt=0)
    max_price_deviation_pct: float | None = Field(default=None, gt=0, le=100)
    min_price: float | None = Field(default=None, ge=0)
    max_adv_pct: float | None = Field(default=None, gt=0, le=100)
    max_allocation_pct: float | None = Field(default=None, gt=0, le=100)
    max_drawdown_pct: float | None = Field(default=None, gt=0, le=100)
    max_daily_loss_pct: float | None = Field(default=None, gt=0, le=100)
    min_liquidity: float | None = Field(default=None, ge=0)


class StrategyConfig(_Strict):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    class_name: str = Field(alias="class", min_length=1)
    description: str = ""
    symbols: tuple[str, ...] = Field(min_length=1)
    timeframe: Literal["1Min", "5Min", "15Min", "1Hour", "1Day"] = "1Day"
    allow_short: bool = False
    params: dict[str, Any] = Field(default_factory=dict)
    sizing: SizingConfig = SizingConfig()
    risk: RiskOverrides = RiskOverrides()

    @field_validator("symbols", mode="before")
    @classmethod
    def _symbols(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple):
            cleaned = [str(s).strip().upper() for s in value]
            if any(not s for s in cleaned):
                raise ValueError("symbols must not be empty strings")
            if len(set(cleaned)) != len(cleaned):
                raise ValueError("symbols are listed twice")
            return tuple(cleaned)
        return value

    def strategy_class(self) -> type[Strategy]:
        return strategy_class(self.class_name)

    def build(self) -> Strategy:
        """A new, initialized strategy instance for this config."""
        strategy = self.strategy_class()(self.params)
        strategy.initialize(self)
        return strategy

    def as_dict(self) -> dict[str, Any]:
        """The config as YAML/JSON data, with the ``class`` key, defaults included."""
        return self.model_dump(mode="json", by_alias=True)

    def content_hash(self) -> str:
        """A stable hash of what the config means (key order and formatting do not count)."""
        data = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(data.encode()).hexdigest()


def config_validate(data: Any, *, source: str = "config") -> StrategyConfig:
    """Validate a parsed config; a ValidationError names every bad field of it."""
    if not isinstance(data, Mapping):
        raise ValidationError(f"{source}: a strategy config must be a mapping of keys to values")
    problems: list[str] = []
    config: StrategyConfig | None = None
    try:
        # by_name=False: a file must say ``class``; ``class_name`` would skip the params check
        config = StrategyConfig.model_validate(dict(data), by_name=False)
    except PydanticValidationError as exc:
        problems.extend(_describe(exc, StrategyConfig, prefix=()))
    class_name = data.get("class")
    params = data.get("params") or {}
    if isinstance(class_name, str) and isinstance(params, Mapping):
        try:
            cls = strategy_class(class_name)
        except ValidationError as exc:
            problems.append(f"class: {exc.message}")
        else:
            try:
                validated = cls.Params.model_validate(dict(params))
            except PydanticValidationError as exc:
                problems.extend(_describe(exc, cls.Params, prefix=("params",)))
            else:
                if config is not None:
                    config = config.model_copy(update={"params": validated.model_dump(mode="json")})
    if problems:
        raise ValidationError(
            f"{source}: " + "; ".join(problems), details={"source": source, "problems": problems}
        )
    assert config is not None
    return config


def config_load(path: Path | str) -> StrategyConfig:
    """Read and validate one YAML config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(f"{path}: cannot read the file ({exc.strerror})") from None
    return config_parse(text, source=str(path))


def config_parse(text: str, *, source: str) -> StrategyConfig:
    """Validate a config given as YAML text (a file's, the dashboard editor's, the API's)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValidationError(
            f"{source}: not valid YAML{where}",
            details={"source": source, "problems": [f"not valid YAML{where}"]},
        ) from None
    return config_validate(data, source=source)


def config_dump(config: StrategyConfig) -> str:
    return yaml.safe_dump(config.as_dict(), sort_keys=False)


def _describe(
    exc: PydanticValidationError, model: type[BaseModel], prefix: tuple[str, ...]
) -> list[str]:
    problems = []
    for error in exc.errors():
        loc = tuple(str(p) for p in error["loc"])
        where = ".".join(prefix + loc) or "config"
        if error["type"] == "extra_forbidden":
            known = _known_fields(model, loc[:-1])
            problems.append(f"{where}: unknown key{did_you_mean(loc[-1], known)}")
        elif error["type"] == "missing":
            problems.append(f"{where}: required")
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {message}")
    return problems


def _known_fields(model: type[BaseModel], parent: tuple[str, ...]) -> list[str]:
    """The keys allowed at ``parent`` inside ``model`` (aliases where a field has one)."""
    for part in parent:
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return [f.alias or n for n, f in model.model_fields.items()]

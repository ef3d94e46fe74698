"""Feature sets (YAML in ``configs/features/``): schema, the registry of feature kinds, a
version derived from the definition, and ``compute_features``.

```yaml
name: technical_basic
description: Momentum, trend and volatility on daily bars
features:
  - kind: rsi                  # column rsi_14 (defaults fill the params)
  - kind: macd                 # macd_12_26_9_macd, _signal, _hist
    params: {fast: 12, slow: 26, signal: 9}
  - kind: bollinger
    name: bb                   # column prefix: bb_mid, bb_upper, bb_lower, bb_pct_b, bb_width
```

A column is named by the spec's ``name`` or else ``<kind>_<param values in declared order>``
(floats without a trailing .0, "." written "p": bollinger_20_2p5_mid);
a kind with several outputs appends ``_<output>``. Every kind is causal: the value at bar t
uses bars 0..t only, and NaN exactly during its warmup.

| kind | params (defaults) | outputs | warmup bars |
|---|---|---|---|
| returns, log_returns | periods=1 | one | periods |
| rsi (Wilder) | window=14 | one | window |
| macd | fast=12, slow=26, signal=9 | macd, signal, hist | slow + signal - 2 |
| bollinger (population std) | window=20, k=2.0 | mid, upper, lower, pct_b, width | window - 1 |
| rolling_mean, rolling_std (ddof=1), zscore | window=20, source=close¹ | one | window - 1 (+1)¹ |
| atr (Wilder) | window=14 | one | window - 1 |
| volume_zscore, relative_volume | window=20 | one | window - 1 |
| dollar_volume (close * volume, mean over window) | window=1 | one | window - 1 |
| obv (Granville, from 0) | none | one | 0 |

¹ source: close, volume, returns or log_returns (one-bar; one more warmup bar).
Recursive kinds (RSI, MACD, ATR, OBV) depend on where the bars start: compute them from the
same first bar to get the same numbers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from quant.errors import ValidationError
from quant.features import indicators as ind
from quant.strategies.base import FloatArray
from quant.strategies.registry import did_you_mean

# Part of every version: bump it when an indicator's numbers change, so cached features and
# models trained on the old numbers no longer match.
FEATURE_CODE_VERSION = 1
BAR_COLUMNS = ("open", "high", "low", "close", "volume")
Bars = Mapping[str, FloatArray]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- parameters of each kind ---------------------------------------------------------------

Source = Literal["close", "returns", "log_returns", "volume"]


class PeriodsParams(_Strict):
    periods: int = Field(default=1, ge=1)


class WilderParams(_Strict):
    window: int = Field(default=14, ge=2)


class RollingParams(_Strict):
    window: int = Field(default=20, ge=2)
    source: Source = "close"


class MacdParams(_Strict):
    fast: int = Field(default=12, ge=1)
    slow: int = Field(default=26, ge=2)
    signal: int = Field(default=9, ge=1)

    @model_validator(mode="after")
    def _fast_below_slow(self) -> MacdParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        return self


class BollingerParams(_Strict):
    window: int = Field(default=20, ge=2)
    k: float = Field(default=2.0, gt=0)


class VolumeParams(_Strict):
    window: int = Field(default=20, ge=2)


class DollarVolumeParams(_Strict):
    window: int = Field(default=1, ge=1)


class NoParams(_Strict):
    pass


# ---- the registry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureKind:
    """``compute`` maps an output suffix ("" for a kind with one column) to its values."""

    name: str
    params: type[BaseModel]
    compute: Callable[[Bars, Any], dict[str, FloatArray]]
    warmup: Callable[[Any], int]
    outputs: tuple[str, ...] = ("",)


FEATURE_KINDS: dict[str, FeatureKind] = {}


def feature_kind_register(kind: FeatureKind) -> None:
    FEATURE_KINDS[kind.name] = kind


def _source(bars: Bars, source: str) -> FloatArray:
    if source == "returns":
        return ind.simple_returns(bars["close"], 1)
    if source == "log_returns":
        return ind.log_returns(bars["close"], 1)
    return bars[source]


def _source_lag(p: RollingParams) -> int:
    return 1 if p.source in ("returns", "log_returns") else 0


def _register_builtins() -> None:
    kinds = [
        FeatureKind(
            "returns",
            PeriodsParams,
            lambda b, p: {"": ind.simple_returns(b["close"], p.periods)},
            lambda p: p.periods,
        ),
        FeatureKind(
            "log_returns",
            PeriodsParams,
            lambda b, p: {"": ind.log_returns(b["close"], p.periods)},
            lambda p: p.periods,
        ),
        FeatureKind(
            "rsi",
            WilderParams,
            lambda b, p: {"": ind.rsi(b["close"], p.window)},
            lambda p: p.window,
        ),
        FeatureKind(
            "macd",
            MacdParams,
            lambda b, p: dict(
                zip(
                    ("macd", "signal", "hist"),
                    ind.macd(b["close"], p.fast, p.slow, p.signal),
                    strict=True,
                )
            ),
            lambda p: p.slow + p.signal - 2,
            ("macd", "signal", "hist"),
        ),
        FeatureKind(
            "bollinger",
            BollingerParams,
            lambda b, p: ind.bollinger(b["close"], p.window, p.k),
            lambda p: p.window - 1,
            ("mid", "upper", "lower", "pct_b", "width"),
        ),
        FeatureKind(
            "rolling_mean",
            RollingParams,
            lambda b, p: {"": ind.rolling_mean(_source(b, p.source), p.window)},
            lambda p: p.window - 1 + _source_lag(p),
        ),
        FeatureKind(
            "rolling_std",
            RollingParams,
            lambda b, p: {"": ind.rolling_std(_source(b, p.source), p.window)},
            lambda p: p.window - 1 + _source_lag(p),
        ),
        FeatureKind(
            "zscore",
            RollingParams,
            lambda b, p: {"": ind.rolling_zscore(_source(b, p.source), p.window)},
            lambda p: p.window - 1 + _source_lag(p),
        ),
        FeatureKind(
            "atr",
            WilderParams,
            lambda b, p: {"": ind.atr(b["high"], b["low"], b["close"], p.window)},
            lambda p: p.window - 1,
        ),
        FeatureKind(
            "volume_zscore",
            VolumeParams,
            lambda b, p: {"": ind.rolling_zscore(b["volume"], p.window)},
            lambda p: p.window - 1,
        ),
        FeatureKind(
            "relative_volume",
            VolumeParams,
            lambda b, p: {"": ind.relative_volume(b["volume"], p.window)},
            lambda p: p.window - 1,
        ),
        FeatureKind(
            "dollar_volume",
            DollarVolumeParams,
            lambda b, p: {"": ind.dollar_volume(b["close"], b["volume"], p.window)},
            lambda p: p.window - 1,
        ),
        FeatureKind(
            "obv",
            NoParams,
            lambda b, p: {"": ind.on_balance_volume(b["close"], b["volume"])},
            lambda p: 0,
        ),
    ]
    for kind in kinds:
        feature_kind_register(kind)


_register_builtins()


# ---- the schema -----------------------------------------------------------------------------


class FeatureSpec(_Strict):
    """One entry of a feature set; after validation ``params`` holds every parameter."""

    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    name: str | None = Field(default=None, max_length=60, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")

    @model_validator(mode="before")
    @classmethod
    def _known_kind_and_params(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or not isinstance(data.get("kind"), str):
            return data
        kind = FEATURE_KINDS.get(data["kind"])
        if kind is None:
            hint = did_you_mean(data["kind"], FEATURE_KINDS)
            hint = hint or f" (known kinds: {', '.join(sorted(FEATURE_KINDS))})"
            raise ValueError(f"kind: unknown feature kind {data['kind']!r}{hint}")
        params = data.get("params") or {}
        if not isinstance(params, Mapping):
            return data
        try:
            validated = kind.params.model_validate(dict(params))
        except PydanticValidationError as exc:
            problems = pydantic_problems(exc, kind.params, prefix="params", noun="parameter")
            raise ValueError("; ".join(problems)) from None
        return {**data, "params": validated.model_dump(mode="json")}

    def _kind(self) -> tuple[FeatureKind, BaseModel]:
        kind = FEATURE_KINDS[self.kind]
        return kind, kind.params.model_validate(self.params)

    def prefix(self) -> str:
        if self.name:
            return self.name
        return "_".join([self.kind, *(_fmt(v) for v in self.params.values())])

    def columns(self) -> list[str]:
        kind, prefix = FEATURE_KINDS[self.kind], self.prefix()
        return [f"{prefix}_{out}" if out else prefix for out in kind.outputs]

    def warmup_bars(self) -> int:
        kind, params = self._kind()
        return int(kind.warmup(params))

    def compute(self, bars: Bars) -> dict[str, FloatArray]:
        kind, params = self._kind()
        values = kind.compute(bars, params)
        return {col: values[out] for col, out in zip(self.columns(), kind.outputs, strict=True)}


class FeatureSetDefinition(_Strict):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    features: list[FeatureSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_columns(self) -> FeatureSetDefinition:
        seen: dict[str, int] = {}
        problems = []
        for i, spec in enumerate(self.features):
            for column in spec.columns():
                if column in seen:
                    problems.append(
                        f"features[{i}]: column {column!r} is also made by features[{seen[column]}]"
                        " (give one of them a different name)"
                    )
                seen.setdefault(column, i)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def version(self) -> str:
        """sha256 of what the features compute: kinds, full params, names, code version.

        The set's name and description are left out (rewording them must not throw away
        cached features); key order and YAML formatting do not count.
        """
        data = {
            "code": FEATURE_CODE_VERSION,
            "features": [f.model_dump(mode="json") for f in self.features],
        }
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def warmup_bars(self) -> int:
        """Bars before the first row where every column has a value."""
        return max(spec.warmup_bars() for spec in self.features)

    def columns(self) -> list[str]:
        return [column for spec in self.features for column in spec.columns()]

    def as_dict(self) -> dict[str, Any]:
        """The definition as YAML/JSON data, defaults included."""
        return self.model_dump(mode="json")


# ---- validation, loading, computing ----------------------------------------------------------


def feature_set_validate(data: Mapping[str, Any], *, source: str = "") -> FeatureSetDefinition:
    """Validate parsed YAML; one ValidationError names every bad field."""
    label = source or "feature set"
    if not isinstance(data, Mapping):
        raise ValidationError(f"{label}: a feature set must be a mapping of keys to values")
    try:
        return FeatureSetDefinition.model_validate(dict(data))
    except PydanticValidationError as exc:
        problems = pydantic_problems(exc, FeatureSetDefinition)
    raise ValidationError(
        f"{label}: " + "; ".join(problems), details={"source": source, "problems": problems}
    )


def feature_set_load(path: Path | str) -> FeatureSetDefinition:
    """Read and validate one YAML feature-set file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(f"{path}: cannot read the file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValidationError(f"{path}: not valid YAML{where}") from None
    return feature_set_validate(data, source=str(path))


def compute_features(bars: pd.DataFrame, definition: FeatureSetDefinition) -> pd.DataFrame:
    """Every column of the set on the bars' index (float64, NaN during each one's warmup)."""
    arrays = bars_arrays(bars)
    columns: dict[str, FloatArray] = {}
    for spec in definition.features:
        columns.update(spec.compute(arrays))
    return pd.DataFrame(columns, index=bars.index, columns=definition.columns(), dtype=np.float64)


def bars_arrays(bars: pd.DataFrame) -> dict[str, FloatArray]:
    """The OHLCV columns as float64 arrays, after checking what the indicators rely on."""
    if not isinstance(bars, pd.DataFrame):
        raise ValidationError("bars: expected a pandas DataFrame")
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise ValidationError(f"bars: missing column(s) {', '.join(missing)}")
    index = bars.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise ValidationError("bars: the index must be a timezone-aware DatetimeIndex (UTC)")
    if not (index.is_monotonic_increasing and index.is_unique):
        raise ValidationError("bars: the index must be sorted in time without duplicates")
    arrays = {c: np.ascontiguousarray(bars[c].to_numpy(dtype=np.float64)) for c in BAR_COLUMNS}
    for column, values in arrays.items():
        if not np.isfinite(values).all():
            raise ValidationError(f"bars: column {column} has NaN or infinite values")
        floor_ok = values >= 0 if column == "volume" else values > 0
        if not floor_ok.all():
            bound = "negative" if column == "volume" else "zero or negative"
            raise ValidationError(f"bars: column {column} has {bound} values")
    return arrays


def _fmt(value: Any) -> str:
    """2.0 -> '2', 2.5 -> '2p5': column names stay plain identifiers."""
    return format(value, "g").replace(".", "p") if isinstance(value, float) else str(value)


def pydantic_problems(
    exc: PydanticValidationError, model: type[BaseModel], *, prefix: str = "", noun: str = "key"
) -> list[str]:
    """One 'path: problem' line per error, did-you-mean for unknown keys. Our own validators
    raise '; '-joined lines whose paths are relative to the error's location."""
    problems = []
    for error in exc.errors():
        loc = error["loc"]
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        path = ".".join(p for p in (prefix, path) if p)
        if error["type"] == "extra_forbidden":
            known = _known_fields(model, loc[:-1])
            problems.append(f"{path}: unknown {noun}{did_you_mean(str(loc[-1]), known)}")
        elif error["type"] == "missing":
            problems.append(f"{path}: required")
        elif error["type"] == "value_error":
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.extend(_join(path, part) for part in message.split("; "))
        else:
            problems.append(f"{path}: {error['msg']}")
    return problems


def _join(path: str, part: str) -> str:
    if ": " not in part:  # a message about the object at ``path`` itself
        return f"{path}: {part}" if path else part
    return f"{path}.{part}" if path else part


def _known_fields(model: type[BaseModel], parent: tuple[int | str, ...]) -> list[str]:
    """The keys allowed at ``parent`` inside ``model`` (through nested models and lists)."""
    for part in parent:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        nested = [
            a
            for a in (annotation, *get_args(annotation))
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if not nested:
            return []
        model = nested[0]
    return list(model.model_fields)

"""Walk-forward configuration, window plans and parameter grids (no Django, no engine runs).

Windows are counted in bars. A :class:`WindowPlan` holds *bar indexes*, each range half-open
like a Python slice: in-sample bars ``is_start <= i < is_end``, out-of-sample bars
``oos_start <= i < oos_end`` (``oos_start == is_end``).

Window ``k`` (from 0):

* ROLLING: ``is_start = k * step``, ``is_end = is_start + in_sample_days``;
* ANCHORED: ``is_start = 0``, ``is_end = in_sample_days + k * step`` (the in-sample part
  grows by ``step`` bars a window);
* both: ``oos_start = is_end``, ``oos_end = oos_start + out_of_sample_days``.

Only windows whose out-of-sample part fits the data (``oos_end <= n_bars``) are planned.
``step_days`` may exceed ``out_of_sample_days`` (bars between two out-of-sample parts are then
never traded) but not fall below it: overlapping out-of-sample parts cannot be stitched into
one equity curve.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from quant.errors import ValidationError
from quant.strategies.base import StrategyParams
from quant.strategies.registry import did_you_mean


class WindowType(enum.StrEnum):
    ROLLING = "rolling"
    ANCHORED = "anchored"


class Objective(enum.StrEnum):
    """What a window maximizes in sample; each names a ``PerformanceMetrics`` field."""

    SHARPE = "sharpe"
    SORTINO = "sortino"
    TOTAL_RETURN = "total_return"
    CAGR = "cagr"
    PROFIT_FACTOR = "profit_factor"
    WIN_RATE = "win_rate"

    @property
    def metric(self) -> str:
        return OBJECTIVE_METRICS[self]


OBJECTIVE_METRICS: dict[Objective, str] = {
    Objective.SHARPE: "sharpe_ratio",
    Objective.SORTINO: "sortino_ratio",
    Objective.TOTAL_RETURN: "total_return_pct",
    Objective.CAGR: "cagr_pct",
    Objective.PROFIT_FACTOR: "profit_factor",
    Objective.WIN_RATE: "win_rate",
}


def objective_value(metrics: Mapping[str, float | None], objective: Objective) -> float | None:
    """The objective of one segment's metrics; ``None`` when the metric is undefined.

    A profit factor is undefined without losing trades: with winners it is +infinity (the
    best possible), without any trade it stays ``None``.
    """
    objective = Objective(objective)
    value = metrics.get(objective.metric)
    wins = metrics.get("winning_trades") or 0
    if value is None and objective is Objective.PROFIT_FACTOR and wins > 0:
        return math.inf
    return None if value is None else float(value)


@dataclass(frozen=True)
class WalkForwardConfig:
    """The walk-forward settings; validated on construction, every bad field named."""

    in_sample_days: int
    out_of_sample_days: int
    step_days: int
    window_type: WindowType = WindowType.ROLLING
    parameter_grid: dict[str, list[Any]] = field(default_factory=dict)
    objective: Objective = Objective.SHARPE
    min_trades_required: int = 1

    def __post_init__(self) -> None:
        problems: list[str] = []
        for name, least in (
            ("in_sample_days", 1),
            ("out_of_sample_days", 1),
            ("step_days", 1),
            ("min_trades_required", 0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append(f"{name}: must be a whole number, got {value!r}")
            elif value < least:
                problems.append(f"{name}: must be >= {least}, got {value}")
        try:
            object.__setattr__(self, "window_type", WindowType(self.window_type))
        except ValueError:
            problems.append(
                f"window_type: must be one of {', '.join(WindowType)}, got {self.window_type!r}"
            )
        try:
            object.__setattr__(self, "objective", Objective(self.objective))
        except ValueError:
            problems.append(
                f"objective: must be one of {', '.join(Objective)}, got {self.objective!r}"
                + did_you_mean(str(self.objective), list(Objective))
            )
        problems.extend(self._grid_problems())
        step, oos = self.step_days, self.out_of_sample_days
        if not problems and step < oos:
            problems.append(
                f"step_days: {step} is below out_of_sample_days ({oos}): out-of-sample "
                "periods would overlap"
            )
        if problems:
            raise ValidationError(
                "walk-forward config: " + "; ".join(problems), details={"problems": problems}
            )

    def _grid_problems(self) -> list[str]:
        grid = self.parameter_grid
        if not isinstance(grid, Mapping):
            return ["parameter_grid: must map parameter names to lists of values"]
        problems = []
        cleaned: dict[str, list[Any]] = {}
        for name, values in grid.items():
            if not isinstance(values, list | tuple):
                problems.append(f"parameter_grid.{name}: must be a list of values, got {values!r}")
                continue
            if not values:
                problems.append(f"parameter_grid.{name}: has no values")
                continue
            seen: list[Any] = []
            for value in values:
                if value in seen:
                    problems.append(f"parameter_grid.{name}: {value!r} is listed twice")
                seen.append(value)
            cleaned[str(name)] = list(values)
        object.__setattr__(self, "parameter_grid", cleaned)
        return problems

    @property
    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.parameter_grid.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "in_sample_days": self.in_sample_days,
            "out_of_sample_days": self.out_of_sample_days,
            "step_days": self.step_days,
            "window_type": self.window_type.value,
            "parameter_grid": {k: list(v) for k, v in self.parameter_grid.items()},
            "objective": self.objective.value,
            "min_trades_required": self.min_trades_required,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WalkForwardConfig:
        known = list(cls.__dataclass_fields__)
        unknown = [k for k in data if k not in known]
        if unknown:
            named = "; ".join(f"{k!r}{did_you_mean(str(k), known)}" for k in unknown)
            raise ValidationError(f"walk-forward config: unknown key(s) {named}")
        missing = [
            k for k in ("in_sample_days", "out_of_sample_days", "step_days") if k not in data
        ]
        if missing:
            raise ValidationError(f"walk-forward config: {', '.join(missing)} required")
        return cls(**dict(data))


@dataclass(frozen=True)
class WindowPlan:
    """One window's bar ranges, half-open: ``[is_start, is_end)`` then ``[oos_start, oos_end)``."""

    index: int
    is_start: int
    is_end: int
    oos_start: int
    oos_end: int

    def as_dict(self) -> dict[str, int]:
        return {
            "index": self.index,
            "is_start": self.is_start,
            "is_end": self.is_end,
            "oos_start": self.oos_start,
            "oos_end": self.oos_end,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowPlan:
        return cls(**{k: int(data[k]) for k in cls.__dataclass_fields__})


def plan_windows(n_bars: int, config: WalkForwardConfig) -> list[WindowPlan]:
    """Every window whose out-of-sample part fits ``n_bars`` (rules in the module docstring)."""
    size_is, size_oos, step = config.in_sample_days, config.out_of_sample_days, config.step_days
    plans: list[WindowPlan] = []
    for k in itertools.count():
        if config.window_type is WindowType.ANCHORED:
            is_start, is_end = 0, size_is + k * step
        else:
            is_start = k * step
            is_end = is_start + size_is
        oos_end = is_end + size_oos
        if oos_end > n_bars:
            break
        plans.append(WindowPlan(k, is_start, is_end, is_end, oos_end))
    if not plans:
        raise ValidationError(
            f"windows longer than the data: one window needs {size_is + size_oos} bars "
            f"(in-sample {size_is} + out-of-sample {size_oos}), the data has {n_bars}",
            details={"needed": size_is + size_oos, "bars": n_bars},
        )
    return plans


@dataclass(frozen=True)
class GridExpansion:
    """The grid's valid points (grid order: the last parameter varies fastest) and the
    combinations left out because the strategy rejects them together (e.g. fast >= slow)."""

    points: list[dict[str, Any]]
    skipped: list[tuple[dict[str, Any], str]]


def grid_expand(
    grid: Mapping[str, list[Any]],
    params_model: type[StrategyParams],
    base: Mapping[str, Any] | None = None,
) -> GridExpansion:
    """Check a grid against the strategy's ``Params`` and list its points.

    Unknown names and values the strategy rejects on their own raise a ``ValidationError``
    naming them; combinations rejected only together are skipped (and listed). A grid of no
    parameters has one point: the strategy's own params. Points hold the grid's keys only,
    with the values as the strategy's ``Params`` coerce them (``"5"`` becomes ``5``).
    """
    known = list(params_model.model_fields)
    unknown = [name for name in grid if name not in known]
    if unknown:
        named = "; ".join(f"{n!r}{did_you_mean(n, known)}" for n in unknown)
        raise ValidationError(
            f"parameter_grid: unknown parameter(s) {named} for {params_model.__name__}; "
            f"known: {', '.join(known) or 'none'}",
            details={"unknown": unknown, "known": known},
        )
    base = {k: v for k, v in (base or {}).items() if k in known}
    names = list(grid)
    points: list[dict[str, Any]] = []
    skipped: list[tuple[dict[str, Any], str]] = []
    bad_values: list[str] = []
    for values in itertools.product(*(grid[n] for n in names)):
        point = dict(zip(names, values, strict=True))
        try:
            checked = params_model.model_validate({**base, **point})
        except PydanticValidationError as exc:
            field_errors = [e for e in exc.errors() if e["loc"] and str(e["loc"][0]) in point]
            for error in field_errors:
                name = str(error["loc"][0])
                message = str(error["msg"]).removeprefix("Value error, ")
                text = f"{name}={point[name]!r}: {message}"
                if text not in bad_values:
                    bad_values.append(text)
            if not field_errors:
                reason = "; ".join(
                    str(e["msg"]).removeprefix("Value error, ") for e in exc.errors()
                )
                skipped.append((point, reason))
            continue
        points.append({n: getattr(checked, n) for n in names})
    if bad_values:
        raise ValidationError(
            "parameter_grid: invalid value(s) " + "; ".join(bad_values),
            details={"invalid": bad_values},
        )
    if not points:
        reasons = "; ".join(sorted({reason for _, reason in skipped}))
        raise ValidationError(f"parameter_grid: no valid combination of values ({reasons})")
    return GridExpansion(points=points, skipped=skipped)


def grid_points(
    grid: Mapping[str, list[Any]],
    params_model: type[StrategyParams],
    base: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The valid points of a grid (see :func:`grid_expand`)."""
    return grid_expand(grid, params_model, base).points

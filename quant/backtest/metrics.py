"""Performance metrics of a backtest: one pure function of the equity curve and the trades.

No Django here (functional core). The inputs are the run's :class:`EquityCurve` (float64
arrays, one point per bar), its closed :class:`Trade` list, the initial capital, the bars per
year of the timeframe and the traded notional; the output is a :class:`PerformanceMetrics`
of exact ``Decimal`` values.

Definitions (``E[t]`` is the curve's equity at bar ``t``, ``C`` the initial capital):

* ``final_equity`` = ``E[-1]`` (``C`` when the curve is empty); ``total_return`` =
  ``final_equity - C`` in money; ``total_return_pct`` = ``total_return / C * 100``.
* Per-bar returns ``r[0] = E[0] / C - 1`` (so a cost paid on the first bar counts) and
  ``r[t] = E[t] / E[t-1] - 1``.
* ``sharpe_ratio`` = ``mean(r) / std(r, ddof=1) * sqrt(periods_per_year)`` (risk-free rate
  0); ``None`` with fewer than 2 returns, a zero standard deviation or returns that are not
  finite (an equity of zero or below on the way).
* ``sortino_ratio`` = ``mean(r) / DD * sqrt(periods_per_year)`` with the downside deviation
  ``DD = sqrt(mean(min(r, 0)^2))`` taken over *all* returns; ``None`` when ``DD`` is 0 (no
  losing bar) or there are fewer than 2 returns.
  "Zero" for both deviations means below ``1e-12`` per bar: float noise on a flat or
  steadily compounding curve must not turn into an astronomic ratio.
* ``max_drawdown`` = ``max_t(P[t] - E[t])`` in money (>= 0) where the running peak
  ``P[t] = max(C, E[0..t])`` starts at the initial capital; ``max_drawdown_pct`` =
  ``max_t((P[t] - E[t]) / P[t]) * 100``: the largest fall *in percent*, which may happen at
  another bar than the largest fall in money.
* Trades: winning = ``pnl > 0``, losing = ``pnl < 0``; a trade with ``pnl == 0`` counts in
  ``total_trades`` only. ``win_rate`` = ``winning / total * 100`` (0 without trades);
  ``avg_win`` / ``avg_loss`` = mean pnl of the winners / losers (``avg_loss`` is negative;
  ``None`` when there are none); ``profit_factor`` = gross profit / |gross loss|, ``None``
  without losing trades.
* ``cagr_pct`` = ``((final_equity / C) ^ (1 / years) - 1) * 100`` where ``years`` is the
  span between the curve's first and last timestamps over 365.25 days; ``None`` when the
  span is shorter than one day or ``final_equity <= 0``.
* ``exposure_pct`` = share of the bars with ``gross_exposure > 0``, * 100 (0 when empty).
* ``turnover`` = ``traded_notional / mean(E)`` (0 when the curve is empty or its mean is
  not positive).

Rounding (``ROUND_HALF_EVEN``, the Decimal default): money fields to cents
(:func:`results.money`); ratios (Sharpe, Sortino, profit factor, turnover) and percentages
to 4 decimals; ``periods_per_year`` is the Decimal of the float (``Decimal("252")``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from quant.backtest.results import CENT, EquityCurve, PerformanceMetrics, Trade, money
from quant.errors import ValidationError

TRADING_DAYS_PER_YEAR = 252
SESSION_MINUTES = 390  # US equity regular session, 09:30-16:00 ET = 6.5 hours
DAYS_PER_YEAR = 365.25
FOUR_PLACES = Decimal("0.0001")
ZERO_DEVIATION = 1e-12  # a per-bar standard / downside deviation below this counts as zero

_PERIODS_PER_YEAR: dict[str, float] = {
    "1Min": TRADING_DAYS_PER_YEAR * SESSION_MINUTES,  # 98280
    "5Min": TRADING_DAYS_PER_YEAR * SESSION_MINUTES / 5,  # 19656
    "15Min": TRADING_DAYS_PER_YEAR * SESSION_MINUTES / 15,  # 6552
    "1Hour": TRADING_DAYS_PER_YEAR * SESSION_MINUTES / 60,  # 1638
    "1Day": TRADING_DAYS_PER_YEAR,
}

_NS_PER_DAY = 86_400 * 10**9


def periods_per_year(timeframe: str) -> float:
    """Bars per year of a timeframe, on the US equity regular session (252 days * 6.5 h)."""
    try:
        return float(_PERIODS_PER_YEAR[str(timeframe)])
    except KeyError:
        known = ", ".join(_PERIODS_PER_YEAR)
        raise ValidationError(
            f"unknown timeframe {timeframe!r}: expected one of {known}",
            details={"timeframe": str(timeframe), "known": list(_PERIODS_PER_YEAR)},
        ) from None


def compute_metrics(
    *,
    equity: EquityCurve,
    trades: Sequence[Trade],
    initial_capital: Decimal,
    periods_per_year: float,
    traded_notional: float,
) -> PerformanceMetrics:
    """The metrics of one run (definitions in the module docstring)."""
    initial = Decimal(initial_capital)
    if not initial.is_finite() or initial <= 0:
        raise ValidationError(
            f"initial_capital: must be a finite number > 0, got {initial_capital}"
        )
    initial_f = float(initial)
    values = np.asarray(equity.equity, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValidationError("equity curve: contains values that are not finite numbers")

    final_f = float(values[-1]) if len(values) else initial_f
    final_equity = money(final_f) if len(values) else initial.quantize(CENT)
    total_return = (final_equity - initial).quantize(CENT)
    total_return_pct = _four(total_return / initial * 100)

    returns = _returns(values, initial_f)
    sharpe, sortino = _risk_ratios(returns, periods_per_year)
    drawdown, drawdown_pct = _drawdowns(values, initial_f)
    trade_stats = _trade_stats(trades)

    return PerformanceMetrics(
        total_return=total_return,
        total_return_pct=total_return_pct,
        sharpe_ratio=sharpe,
        max_drawdown=money(drawdown),
        max_drawdown_pct=_four(Decimal(repr(drawdown_pct))),
        win_rate=trade_stats.win_rate,
        total_trades=trade_stats.total,
        winning_trades=trade_stats.winning,
        losing_trades=trade_stats.losing,
        avg_win=trade_stats.avg_win,
        avg_loss=trade_stats.avg_loss,
        profit_factor=trade_stats.profit_factor,
        sortino_ratio=sortino,
        cagr_pct=_cagr_pct(equity.ts, final_f, initial_f),
        exposure_pct=_exposure_pct(equity.gross_exposure),
        turnover=_turnover(values, traded_notional),
        final_equity=final_equity,
        periods_per_year=_decimal_of(periods_per_year),
    )


def _returns(values: npt.NDArray[np.float64], initial: float) -> npt.NDArray[np.float64]:
    if not len(values):
        return np.empty(0, dtype=np.float64)
    previous = np.concatenate(([initial], values[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        result: npt.NDArray[np.float64] = values / previous - 1.0
    return result


def _risk_ratios(
    returns: npt.NDArray[np.float64], ppy: float
) -> tuple[Decimal | None, Decimal | None]:
    if len(returns) < 2 or not np.isfinite(returns).all():
        return None, None
    mean = float(returns.mean())
    scale = math.sqrt(ppy)
    std = float(returns.std(ddof=1))
    sharpe = _four_f(mean / std * scale) if std >= ZERO_DEVIATION else None
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    sortino = _four_f(mean / downside * scale) if downside >= ZERO_DEVIATION else None
    return sharpe, sortino


def _drawdowns(values: npt.NDArray[np.float64], initial: float) -> tuple[float, float]:
    if not len(values):
        return 0.0, 0.0
    peaks = np.maximum.accumulate(np.maximum(values, initial))
    falls = peaks - values
    # peaks >= values, so both maxima are >= 0 (+ 0.0 turns a -0.0 into 0.0)
    return float(falls.max()) + 0.0, float((falls / peaks).max()) * 100.0 + 0.0


def drawdown_pct_series(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Per point, the fall from the running peak of ``values`` in % of that peak (<= 0); 0
    while the peak is not positive. The drawdown charts draw it; unlike ``max_drawdown_pct``
    the peak starts at the first value, not at the initial capital."""
    equity = np.asarray(values, dtype=np.float64)
    if not len(equity):
        return equity.copy()
    peak = np.maximum.accumulate(equity)
    safe = np.where(peak > 0, peak, 1.0)
    result: npt.NDArray[np.float64] = np.where(peak > 0, (equity / safe - 1.0) * 100.0, 0.0)
    return result


@dataclass(frozen=True)
class _TradeStats:
    total: int
    winning: int
    losing: int
    win_rate: Decimal
    avg_win: Decimal | None
    avg_loss: Decimal | None
    profit_factor: Decimal | None


def _trade_stats(trades: Sequence[Trade]) -> _TradeStats:
    wins = [t.pnl for t in trades if t.pnl > 0]
    losses = [t.pnl for t in trades if t.pnl < 0]
    gross_profit = sum(wins, Decimal(0))
    gross_loss = sum(losses, Decimal(0))  # <= 0
    return _TradeStats(
        total=len(trades),
        winning=len(wins),
        losing=len(losses),
        win_rate=_four(Decimal(len(wins)) / len(trades) * 100) if trades else _four(0),
        avg_win=(gross_profit / len(wins)).quantize(CENT) if wins else None,
        avg_loss=(gross_loss / len(losses)).quantize(CENT) if losses else None,
        profit_factor=_four(gross_profit / -gross_loss) if losses else None,
    )


def _cagr_pct(ts: npt.NDArray[np.datetime64], final: float, initial: float) -> Decimal | None:
    if len(ts) < 2 or final <= 0:
        return None
    # only the ends, in microseconds: second-resolution timelines reach past the year 2262,
    # where nanoseconds overflow
    ends = np.asarray(ts)[[0, -1]].astype("datetime64[us]").astype(np.int64)
    span_ns = (int(ends[1]) - int(ends[0])) * 1000
    if span_ns < _NS_PER_DAY:
        return None
    years = span_ns / _NS_PER_DAY / DAYS_PER_YEAR
    try:
        growth = (final / initial) ** (1.0 / years)
    except OverflowError:
        return None
    return _four_f((growth - 1.0) * 100.0)


def _exposure_pct(gross_exposure: npt.NDArray[np.float64]) -> Decimal:
    exposure = np.asarray(gross_exposure, dtype=np.float64)
    if not len(exposure):
        return _four(0)
    return _four(Decimal(int(np.count_nonzero(exposure > 0))) / Decimal(len(exposure)) * 100)


def _turnover(values: npt.NDArray[np.float64], traded_notional: float) -> Decimal:
    if not len(values):
        return _four(0)
    average = float(values.mean())
    ratio = float(traded_notional) / average if average > 0 else 0.0
    return _four(Decimal(repr(ratio + 0.0))) if math.isfinite(ratio) else _four(0)


def _four(value: Decimal | int) -> Decimal:
    return Decimal(value).quantize(FOUR_PLACES)


def _four_f(value: float) -> Decimal | None:
    """A float ratio or percentage as a 4-decimal Decimal; ``None`` when not finite."""
    if not math.isfinite(value):
        return None
    return Decimal(repr(float(value) + 0.0)).quantize(FOUR_PLACES)  # + 0.0: no "-0.0000"


def _decimal_of(value: float) -> Decimal:
    value = float(value)
    return Decimal(int(value)) if value.is_integer() else Decimal(repr(value))


@dataclass(frozen=True)
class CurveRatios:
    """The ratios of an equity curve alone (no trades): live and paper summaries use them."""

    sharpe: Decimal | None
    sortino: Decimal | None
    max_drawdown_pct: Decimal
    turnover: Decimal


def curve_ratios(
    values: Sequence[float], *, periods_per_year: float, traded_notional: float = 0.0
) -> CurveRatios:
    """Sharpe, Sortino and maximum drawdown of ``values`` (the first value is the start),
    with the same formulas as a backtest's metrics."""
    curve = np.asarray(values, dtype=np.float64)
    if not len(curve):
        return CurveRatios(None, None, _four(0), _four(0))
    initial = float(curve[0])
    sharpe, sortino = _risk_ratios(_returns(curve[1:], initial), periods_per_year)
    _, drawdown_pct = _drawdowns(curve, initial)
    return CurveRatios(
        sharpe, sortino, _four_f(drawdown_pct) or _four(0), _turnover(curve, traded_notional)
    )

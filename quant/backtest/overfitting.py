"""Overfitting statistics of a parameter search: deflated Sharpe ratio, PBO (CSCV), degradation.

NumPy and SciPy only, no Django. Sharpe ratios here are *per period* (not annualized), as in
the papers: ``SR = mean(r) / std(r, ddof=1)`` of per-bar returns ``r``.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

EULER_GAMMA = 0.5772156649015329
ZERO_DEVIATION = 1e-12  # a per-bar standard deviation below this counts as zero
SIGNIFICANT_DSR = 0.95
LIKELY_OVERFIT_PBO = 0.5
SOME_OVERFIT_PBO = 0.25

Matrix = npt.NDArray[np.float64]


def sharpe(returns: npt.ArrayLike) -> float | None:
    """Per-period Sharpe ``mean / std(ddof=1)``; ``None`` with < 2 returns or no deviation."""
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < 2 or not np.isfinite(r).all():
        return None
    deviation = float(r.std(ddof=1))
    return float(r.mean()) / deviation if deviation >= ZERO_DEVIATION else None


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """Expected maximum of ``n_trials`` Sharpe estimates whose true value is 0.

    Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", eq. (2) via the False
    Strategy Theorem: ``SR0 = sqrt(V) * ((1 - g) * Z(1 - 1/N) + g * Z(1 - 1/(N e)))`` with
    ``V`` the variance of the trials' Sharpe ratios, ``g`` the Euler-Mascheroni constant and
    ``Z`` the standard normal quantile. 0 for a single trial (nothing was selected).
    """
    if n_trials < 1:
        raise ValueError("n_trials must be >= 1")
    if n_trials == 1 or sharpe_variance <= 0:
        return 0.0
    n = float(n_trials)
    z = (1 - EULER_GAMMA) * stats.norm.ppf(1 - 1 / n) + EULER_GAMMA * stats.norm.ppf(
        1 - 1 / (n * math.e)
    )
    return math.sqrt(sharpe_variance) * float(z)


def probabilistic_sharpe_ratio(
    sharpe_ratio: float, benchmark: float, n_obs: int, skewness: float, kurtosis: float
) -> float:
    """Probability that the true Sharpe exceeds ``benchmark`` given the estimate.

    Bailey & López de Prado (2012), "The Sharpe Ratio Efficient Frontier", used as eq. (1) of
    the 2014 DSR paper: ``PSR = Phi((SR - SR*) * sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1)/4
    SR^2))`` with skewness ``g3`` and (non-excess) kurtosis ``g4`` of the returns.
    """
    denominator = 1 - skewness * sharpe_ratio + (kurtosis - 1) / 4 * sharpe_ratio**2
    if n_obs < 2 or denominator <= 0:
        return math.nan
    z = (sharpe_ratio - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(denominator)
    return float(stats.norm.cdf(z))


@dataclass(frozen=True)
class DeflatedSharpe:
    value: float  # the DSR: probability that the true Sharpe is above the luck benchmark
    sharpe: float  # per-period Sharpe of the tested returns
    benchmark: float  # SR0, the expected maximum Sharpe of the trials under no skill
    n_trials: int
    n_obs: int
    skewness: float
    kurtosis: float  # non-excess (3 for a normal distribution)
    trial_sharpe_variance: float


def deflated_sharpe_ratio(
    returns: npt.ArrayLike, trial_sharpes: Sequence[float], n_trials: int | None = None
) -> DeflatedSharpe | None:
    """The deflated Sharpe ratio of ``returns`` after ``n_trials`` tried configurations.

    Bailey & López de Prado (2014): ``DSR = PSR(SR0)`` where ``SR0`` is
    :func:`expected_max_sharpe` of ``N`` trials with ``V`` = the variance of
    ``trial_sharpes`` (per-period Sharpe ratios of the trials; undefined ones are left out of
    ``V`` but still count in ``N``), and ``T``, skewness and kurtosis come from ``returns``.
    ``N`` defaults to ``len(trial_sharpes)``. ``None`` when ``returns`` has no Sharpe ratio.
    """
    r = np.asarray(returns, dtype=np.float64)
    observed = sharpe(r)
    if observed is None:
        return None
    finite = np.array([s for s in trial_sharpes if s is not None and math.isfinite(s)])
    variance = float(finite.var(ddof=1)) if len(finite) > 1 else 0.0
    trials = int(n_trials if n_trials is not None else len(trial_sharpes))
    benchmark = expected_max_sharpe(max(trials, 1), variance)
    skewness = float(stats.skew(r, bias=True))
    kurtosis = float(stats.kurtosis(r, fisher=False, bias=True))
    value = probabilistic_sharpe_ratio(observed, benchmark, len(r), skewness, kurtosis)
    return DeflatedSharpe(
        value=value,
        sharpe=observed,
        benchmark=benchmark,
        n_trials=trials,
        n_obs=len(r),
        skewness=skewness,
        kurtosis=kurtosis,
        trial_sharpe_variance=variance,
    )


@dataclass(frozen=True)
class Pbo:
    value: float  # share of splits whose logit is <= 0
    logits: list[float]
    n_splits: int
    n_blocks: int
    n_configs: int


def _block_count(n_rows: int, wanted: int) -> int:
    """The even number of blocks, at most ``wanted``, that leaves >= 2 rows a block."""
    blocks = min(wanted, n_rows // 2)
    return blocks - blocks % 2


def cscv_logits(returns: npt.ArrayLike, n_blocks: int = 16) -> tuple[list[float], int]:
    """Logits of the out-of-sample relative rank of the in-sample best, one per CSCV split.

    Bailey, Borwein, López de Prado & Zhu (2015), "The Probability of Backtest Overfitting":
    the ``T x N`` matrix of per-period returns of ``N`` configurations is cut into ``S`` even
    blocks of rows (the first ``T mod S`` rows are dropped); each of the ``C(S, S/2)`` choices
    of half the blocks is an in-sample set and the rest its out-of-sample set. For each split
    the configuration ``n*`` with the best in-sample Sharpe is found, its out-of-sample rank
    ``r`` among the ``N`` (1 = worst, ties averaged) gives ``w = r / (N + 1)`` and the logit
    ``ln(w / (1 - w))``. Returns ``(logits, S)``; no logits when ``N < 2`` or ``T < 4``.
    """
    matrix = np.asarray(returns, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError("returns must be a T x N matrix")
    n_rows, n_configs = matrix.shape
    blocks = _block_count(n_rows, n_blocks)
    if n_configs < 2 or blocks < 2:
        return [], blocks
    matrix = np.nan_to_num(matrix[n_rows % blocks :], nan=0.0, posinf=0.0, neginf=0.0)
    per_block = matrix.reshape(blocks, -1, n_configs)
    sums, squares = per_block.sum(axis=1), (per_block**2).sum(axis=1)  # blocks x N
    low, high, complement = _splits(blocks)
    # every half is some split's in-sample set and another's out-of-sample set: one Sharpe
    # per half and configuration serves both sides
    in_sums, in_squares = _half_sums(sums, low, high), _half_sums(squares, low, high)
    half_sharpe = _sharpe_from_sums(in_sums, in_squares, blocks // 2 * per_block.shape[1])
    is_sharpe, oos_sharpe = half_sharpe, half_sharpe[complement]
    best = np.argmax(is_sharpe, axis=1)  # ties: the first configuration
    picked = oos_sharpe[np.arange(len(best)), best][:, None]
    rank = (oos_sharpe < picked).sum(axis=1) + ((oos_sharpe == picked).sum(axis=1) + 1) / 2
    share = rank / (n_configs + 1)
    return np.log(share / (1 - share)).tolist(), blocks


Splits = tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]


@functools.cache
def _splits(blocks: int) -> Splits:
    """Every choice of half the blocks as two bit masks, over the first ``blocks // 2``
    blocks and over the others, and for each choice the index of its complement."""
    half = blocks // 2
    combos = list(itertools.combinations(range(blocks), half))
    row_of = {combo: row for row, combo in enumerate(combos)}
    everything = set(range(blocks))
    complement = np.array([row_of[tuple(sorted(everything - set(c)))] for c in combos])
    low = np.array([sum(1 << b for b in c if b < half) for c in combos])
    high = np.array([sum(1 << (b - half) for b in c if b >= half) for c in combos])
    for array in (low, high, complement):
        array.flags.writeable = False
    return low, high, complement


def _half_sums(per_block: Matrix, low: npt.NDArray[np.intp], high: npt.NDArray[np.intp]) -> Matrix:
    """Column sums over each split's blocks: sums over every subset of the first and of the
    second half of the blocks (2^(S/2) each, cheap), then one gather and add per split."""
    half = per_block.shape[0] // 2
    result: Matrix = _subset_sums(per_block[:half])[low] + _subset_sums(per_block[half:])[high]
    return result


def _subset_sums(rows: Matrix) -> Matrix:
    """Row ``mask`` holds the sum of the rows whose bit is set in ``mask``."""
    sums = np.zeros((1 << len(rows), rows.shape[1]))
    for bit, row in enumerate(rows):
        step = 1 << bit
        sums[step : 2 * step] = sums[:step] + row
    return sums


def _sharpe_from_sums(sums: Matrix, squares: Matrix, n: int) -> Matrix:
    mean = sums / n
    variance = np.maximum((squares - n * mean**2) / (n - 1), 0.0)
    deviation = np.sqrt(variance)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(deviation >= ZERO_DEVIATION, mean / deviation, 0.0)
    result: Matrix = ratio
    return result


def probability_of_backtest_overfitting(
    returns: npt.ArrayLike | Sequence[npt.ArrayLike], n_blocks: int = 16
) -> Pbo | None:
    """PBO by CSCV: the share of splits where the in-sample best ranks at or below the
    out-of-sample median (logit <= 0); see :func:`cscv_logits` for the method and paper.

    ``returns`` is one ``T x N`` matrix, or a list of them (one per walk-forward window, each
    with its own ``T`` and the same ``N``): the logits of all are pooled, so every window's
    splits weigh the same. ``None`` when no matrix yields a split.
    """
    if isinstance(returns, list | tuple) and returns and np.ndim(returns[0]) == 2:
        matrices: list[npt.ArrayLike] = list(returns)
    else:
        matrices = [returns]  # type: ignore[list-item]
    logits: list[float] = []
    used_blocks, configs = 0, 0
    for matrix in matrices:
        found, blocks = cscv_logits(matrix, n_blocks)
        if found:
            logits.extend(found)
            used_blocks = max(used_blocks, blocks)
            configs = np.shape(matrix)[1]
    if not logits:
        return None
    value = float(np.mean(np.asarray(logits) <= 0))
    return Pbo(
        value=value, logits=logits, n_splits=len(logits), n_blocks=used_blocks, n_configs=configs
    )


@dataclass(frozen=True)
class Degradation:
    """In-sample vs out-of-sample objective over the windows that have both."""

    mean_in_sample: float
    mean_out_of_sample: float
    ratio: float | None  # mean OOS / mean IS; None when mean IS <= 0 (no level to keep)
    share_worse: float  # share of windows where OOS < IS
    windows: int


def degradation(
    in_sample: Sequence[float | None], out_of_sample: Sequence[float | None]
) -> Degradation | None:
    """Pairs where either value is missing or infinite are left out; ``None`` if none remain."""
    pairs = [
        (float(a), float(b))
        for a, b in zip(in_sample, out_of_sample, strict=True)
        if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)
    ]
    if not pairs:
        return None
    is_values = np.array([p[0] for p in pairs])
    oos_values = np.array([p[1] for p in pairs])
    mean_is, mean_oos = float(is_values.mean()), float(oos_values.mean())
    return Degradation(
        mean_in_sample=mean_is,
        mean_out_of_sample=mean_oos,
        ratio=mean_oos / mean_is if mean_is > 0 else None,
        share_worse=float(np.mean(oos_values < is_values)),
        windows=len(pairs),
    )


@dataclass(frozen=True)
class OverfittingStats:
    deflated_sharpe: DeflatedSharpe | None
    pbo: Pbo | None
    degradation: Degradation | None

    def as_dict(self) -> dict[str, Any]:
        pbo = None
        if self.pbo is not None:
            # not asdict: it would deep-copy every split's logit only to drop them
            pbo = {
                f.name: getattr(self.pbo, f.name) for f in fields(self.pbo) if f.name != "logits"
            }
            pbo["logit_median"] = float(np.median(self.pbo.logits))
        return {
            "deflated_sharpe": self.deflated_sharpe.value if self.deflated_sharpe else None,
            "pbo": self.pbo.value if self.pbo else None,
            "degradation": asdict(self.degradation) if self.degradation else None,
            "verdict": verdict(self),
            "details": {
                "deflated_sharpe": asdict(self.deflated_sharpe) if self.deflated_sharpe else None,
                "pbo": pbo,
            },
        }


def verdict(stats: OverfittingStats) -> str:
    """A plain-language reading of the statistics (thresholds: PBO 0.5 and 0.25, DSR 0.95)."""
    parts: list[str] = []
    pbo, dsr, deg = stats.pbo, stats.deflated_sharpe, stats.degradation
    weak_oos = deg is not None and deg.ratio is not None and deg.ratio < 0.5
    if pbo is not None:
        share = f"{pbo.value:.0%} of {pbo.n_splits:,} splits (PBO {pbo.value:.2f})"
        if pbo.value > LIKELY_OVERFIT_PBO:
            parts.append(
                "Likely overfit: the in-sample best ranks at or below the median out of "
                f"sample in {share}."
            )
        elif pbo.value >= SOME_OVERFIT_PBO or weak_oos:
            parts.append(
                "Some signs of overfitting: the in-sample best ranks at or below the median "
                f"out of sample in {share}."
            )
        else:
            parts.append(
                "No evidence of overfitting: the in-sample best ranks at or below the median "
                f"out of sample in only {share}."
            )
    else:
        parts.append("No PBO: it needs at least two parameter combinations and enough bars.")
    if dsr is not None and math.isfinite(dsr.value):
        judged = "significant" if dsr.value >= SIGNIFICANT_DSR else "not significant"
        parts.append(
            f"Deflated Sharpe ratio {dsr.value:.2f}: after {dsr.n_trials:,} configurations "
            f"tried, the out-of-sample Sharpe is {judged} (threshold {SIGNIFICANT_DSR})."
        )
    else:
        parts.append("No deflated Sharpe ratio: the out-of-sample returns have no Sharpe ratio.")
    if deg is not None:
        means = f"mean {deg.mean_out_of_sample:.4g} vs {deg.mean_in_sample:.4g} in sample"
        if deg.ratio is None:
            level = f"has no in-sample level to keep ({means})"
        elif deg.ratio < 0:
            level = f"turns negative ({means})"
        else:
            level = f"reaches {deg.ratio:.0%} of its in-sample level on average"
        worse = round(deg.share_worse * deg.windows)
        parts.append(
            f"Out of sample the objective {level}, and is lower than in sample in "
            f"{worse} of {deg.windows} windows."
        )
    return " ".join(parts)

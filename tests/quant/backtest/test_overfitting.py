"""Overfitting statistics against known answers: the DSR paper's example, CSCV by hand,
matrices whose PBO is known, degradation by hand, and the plain-language verdict."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from quant.backtest.overfitting import (
    DeflatedSharpe,
    Degradation,
    OverfittingStats,
    Pbo,
    cscv_logits,
    deflated_sharpe_ratio,
    degradation,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    sharpe,
    verdict,
)


def test_dsr_matches_the_papers_numeric_example() -> None:
    """Bailey & López de Prado (2014), section "A numerical example": 100 trials with an
    annualized Sharpe variance of 1/2, best annualized Sharpe 2.5 over 1250 daily returns
    (5 years of 250 days), skewness -3, kurtosis 10: SR0 = 0.1132 and DSR = 0.9004."""
    sr0 = expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = probabilistic_sharpe_ratio(2.5 / math.sqrt(250), sr0, 1250, -3.0, 10.0)
    assert dsr == pytest.approx(0.9004, abs=5e-4)


def test_expected_max_sharpe_of_one_trial_is_zero() -> None:
    assert expected_max_sharpe(1, 0.01) == 0.0
    assert expected_max_sharpe(50, 0.0) == 0.0
    with pytest.raises(ValueError):
        expected_max_sharpe(0, 0.01)


def test_deflated_sharpe_ratio_by_hand() -> None:
    returns = np.array([0.01, -0.02, 0.015, 0.003, -0.004, 0.02, 0.001, -0.006, 0.012, 0.004])
    trials = [0.05, 0.2, -0.1, 0.15]
    # moments by hand (population moments, as the paper's estimator)
    mean = sum(returns) / 10
    sd = math.sqrt(sum((r - mean) ** 2 for r in returns) / 9)
    m2 = sum((r - mean) ** 2 for r in returns) / 10
    skew = sum((r - mean) ** 3 for r in returns) / 10 / m2**1.5
    kurt = sum((r - mean) ** 4 for r in returns) / 10 / m2**2
    t_mean = sum(trials) / 4
    variance = sum((s - t_mean) ** 2 for s in trials) / 3
    gamma = 0.5772156649015329
    from scipy.stats import norm

    sr0 = math.sqrt(variance) * (
        (1 - gamma) * norm.ppf(1 - 1 / 8) + gamma * norm.ppf(1 - 1 / (8 * math.e))
    )
    sr = mean / sd
    expected = norm.cdf(
        (sr - sr0) * math.sqrt(9) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    )

    result = deflated_sharpe_ratio(returns, trials, n_trials=8)

    assert result is not None
    assert result.sharpe == pytest.approx(sr)
    assert result.skewness == pytest.approx(skew)
    assert result.kurtosis == pytest.approx(kurt)
    assert result.benchmark == pytest.approx(sr0)
    assert result.value == pytest.approx(expected)
    assert (result.n_trials, result.n_obs) == (8, 10)


def test_more_trials_deflate_more() -> None:
    returns = np.random.default_rng(1).normal(0.001, 0.01, 500)
    trials = list(np.random.default_rng(2).normal(0, 0.05, 50))
    few = deflated_sharpe_ratio(returns, trials, n_trials=2)
    many = deflated_sharpe_ratio(returns, trials, n_trials=1000)
    assert few is not None and many is not None
    assert many.value < few.value


def test_flat_returns_have_no_sharpe_and_no_dsr() -> None:
    assert sharpe([0.0, 0.0, 0.0]) is None
    assert sharpe([0.01]) is None
    assert deflated_sharpe_ratio(np.zeros(20), [0.1, 0.2]) is None


def test_cscv_logits_by_hand_on_two_blocks() -> None:
    """T=4, N=2, S=2. Block 0 (rows 0-1): A = [.01, .03] (SR 1.414), B = [0, .02] (SR .707);
    block 1 (rows 2-3): A = [-.01, .01] (SR 0), B = [.01, .03] (SR 1.414). Either way round,
    the in-sample best is the worse of two out of sample: rank 1, w = 1/3, logit ln(1/2)."""
    matrix = np.array([[0.01, 0.0], [0.03, 0.02], [-0.01, 0.01], [0.01, 0.03]])
    logits, blocks = cscv_logits(matrix, n_blocks=2)
    assert blocks == 2
    assert logits == pytest.approx([math.log(0.5), math.log(0.5)])
    pbo = probability_of_backtest_overfitting(matrix, n_blocks=2)
    assert pbo is not None
    assert (pbo.value, pbo.n_splits, pbo.n_configs) == (1.0, 2, 2)


@pytest.mark.parametrize(("rows", "configs", "blocks"), [(60, 5, 6), (101, 4, 8), (40, 7, 10)])
def test_cscv_logits_match_a_plain_loop(rows: int, configs: int, blocks: int) -> None:
    """The fast path (subset sums, one Sharpe per half) against the method read literally."""
    from scipy.stats import rankdata

    matrix = np.random.default_rng(rows).normal(0.0, 0.01, (rows, configs))
    used = matrix[rows % blocks :]
    parts = np.array_split(np.arange(len(used)), blocks)
    expected = []
    for combo in itertools.combinations(range(blocks), blocks // 2):
        inside = np.concatenate([parts[b] for b in combo])
        outside = np.concatenate([parts[b] for b in range(blocks) if b not in combo])
        is_sr = used[inside].mean(axis=0) / used[inside].std(axis=0, ddof=1)
        oos_sr = used[outside].mean(axis=0) / used[outside].std(axis=0, ddof=1)
        w = rankdata(oos_sr)[int(np.argmax(is_sr))] / (configs + 1)
        expected.append(math.log(w / (1 - w)))
    logits, used_blocks = cscv_logits(matrix, n_blocks=blocks)
    assert used_blocks == blocks
    assert logits == pytest.approx(expected)


def test_an_in_sample_best_at_the_out_of_sample_median_counts_as_overfit() -> None:
    """N=3, S=2; each block's two rows are m -/+ d (std 0.01, so SR = m / 0.01). Block 0:
    SR A=3, B=2, C=1; block 1: A=2, B=3, C=1. Either split's in-sample best is the median
    out of sample: rank 2 of 3, w = 1/2, logit 0, which the paper counts (logit <= 0)."""
    d = 0.01 / math.sqrt(2)
    blocks = [(0.03, 0.02, 0.01), (0.02, 0.03, 0.01)]
    rows = [[m + sign * d for m in means] for means in blocks for sign in (-1, 1)]
    logits, _ = cscv_logits(np.array(rows), n_blocks=2)
    assert logits == pytest.approx([0.0, 0.0], abs=1e-12)
    pbo = probability_of_backtest_overfitting(np.array(rows), n_blocks=2)
    assert pbo is not None and pbo.value == 1.0


def test_pbo_is_near_zero_when_one_configuration_truly_dominates() -> None:
    rng = np.random.default_rng(3)
    matrix = rng.normal(0.0, 0.01, (800, 10))
    matrix[:, 4] += 0.004  # a real edge: Sharpe about 0.4 a bar
    pbo = probability_of_backtest_overfitting(matrix, n_blocks=10)
    assert pbo is not None
    assert pbo.n_splits == math.comb(10, 5)
    assert pbo.value < 0.02


def test_pbo_of_pure_noise_is_about_one_half() -> None:
    """Without skill the in-sample best's out-of-sample rank is uniform: PBO near 0.5
    (averaged over independent noise matrices to keep the check tight)."""
    rng = np.random.default_rng(4)
    values = [
        probability_of_backtest_overfitting(rng.normal(0, 0.01, (400, 12)), n_blocks=8)
        for _ in range(20)
    ]
    pbos = [p.value for p in values if p is not None]
    assert len(pbos) == 20
    assert 0.4 < float(np.mean(pbos)) < 0.6


def test_pbo_is_high_when_in_sample_luck_does_not_persist() -> None:
    """Each configuration earns one lucky burst in its own block and bleeds slowly
    elsewhere: the in-sample best is the one whose burst fell in sample, and out of sample it
    only bleeds while the others' bursts show up there."""
    blocks, rows, configs = 8, 25, 8
    matrix = np.full((blocks * rows, configs), -0.001)
    matrix += np.random.default_rng(5).normal(0, 0.0005, matrix.shape)
    for n in range(configs):
        matrix[n * rows : (n + 1) * rows, n] += 0.01
    pbo = probability_of_backtest_overfitting(matrix, n_blocks=blocks)
    assert pbo is not None
    assert pbo.value > 0.9


def test_pbo_pools_the_logits_of_several_matrices() -> None:
    dominant = np.random.default_rng(6).normal(0, 0.01, (200, 4))
    dominant[:, 0] += 0.01
    hand = np.array([[0.01, 0.0], [0.03, 0.02], [-0.01, 0.01], [0.01, 0.03]])
    alone = probability_of_backtest_overfitting(dominant, n_blocks=4)
    pooled = probability_of_backtest_overfitting([dominant, hand], n_blocks=4)
    assert alone is not None and pooled is not None
    assert pooled.n_splits == alone.n_splits + 2  # the 4-row matrix gets 2 blocks
    assert pooled.value == pytest.approx((alone.value * alone.n_splits + 2) / pooled.n_splits)


def test_pbo_needs_two_configurations_and_enough_rows() -> None:
    assert probability_of_backtest_overfitting(np.zeros((100, 1))) is None
    assert probability_of_backtest_overfitting(np.zeros((3, 5))) is None


def test_degradation_by_hand() -> None:
    # pairs (1, .5) and (2, 2.5); the third window has no OOS value
    result = degradation([1.0, 2.0, 0.5], [0.5, 2.5, None])
    assert result == Degradation(
        mean_in_sample=1.5, mean_out_of_sample=1.5, ratio=1.0, share_worse=0.5, windows=2
    )
    worse = degradation([2.0, 1.0, 3.0, math.inf], [1.0, 0.0, 2.0, 5.0])
    assert worse is not None
    assert worse.ratio == pytest.approx(0.5)
    assert (worse.share_worse, worse.windows) == (1.0, 3)
    negative = degradation([-1.0, 0.5], [0.2, 0.1])
    assert negative is not None and negative.ratio is None
    assert degradation([None], [1.0]) is None


def _stats(pbo: float, dsr: float, ratio: float | None = 0.9) -> OverfittingStats:
    return OverfittingStats(
        deflated_sharpe=DeflatedSharpe(dsr, 0.1, 0.05, 480, 1000, 0.0, 3.0, 0.001),
        pbo=Pbo(pbo, [-1.0, 1.0], 12870, 16, 24),
        degradation=Degradation(1.0, 0.9 if ratio else -0.2, ratio, 0.7, 10),
    )


def test_verdict_in_plain_language() -> None:
    bad = verdict(_stats(0.72, 0.3, ratio=None))
    assert bad.startswith(
        "Likely overfit: the in-sample best ranks at or below the median out of sample in 72% "
        "of 12,870 splits (PBO 0.72)."
    )
    assert "Deflated Sharpe ratio 0.30: after 480 configurations tried" in bad
    assert "not significant" in bad
    assert "lower than in sample in 7 of 10 windows" in bad
    good = verdict(_stats(0.08, 0.97))
    assert good.startswith("No evidence of overfitting")
    assert "is significant" in good
    assert "reaches 90% of its in-sample level" in good
    assert verdict(_stats(0.3, 0.97)).startswith("Some signs of overfitting")
    empty = verdict(OverfittingStats(None, None, None))
    assert "No PBO" in empty and "No deflated Sharpe ratio" in empty


def test_stats_as_dict_is_the_report_shape() -> None:
    data = _stats(0.72, 0.3).as_dict()
    assert set(data) == {"deflated_sharpe", "pbo", "degradation", "verdict", "details"}
    assert (data["pbo"], data["deflated_sharpe"]) == (0.72, 0.3)
    assert data["degradation"]["share_worse"] == 0.7
    assert "logits" not in data["details"]["pbo"]

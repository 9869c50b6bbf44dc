"""src.stats against hand-worked values and simulation."""

from __future__ import annotations

import math
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.stats import core as stats

# ---- Wilson ------------------------------------------------------------------------------------------------------

def test_wilson_hand_worked():
    # z is Phi^-1(0.975) exactly, not the rounded 1.96 (which moved bounds by ~1e-5)
    z = 1.959963984540054
    assert stats.Z_95 == pytest.approx(z, abs=1e-15)
    z2 = z * z
    # k=8, n=10: centre (0.8 + z^2/20) / (1 + z^2/10); half-width z*sqrt(0.016 + z^2/400)/(1 + z^2/10)
    lo, hi = stats.wilson_interval(8, 10)
    centre, half = (0.8 + z2 / 20) / (1 + z2 / 10), z * math.sqrt(0.016 + z2 / 400) / (1 + z2 / 10)
    assert lo == pytest.approx(centre - half, abs=1e-12) and hi == pytest.approx(centre + half, abs=1e-12)
    assert lo == pytest.approx(0.4902, abs=5e-4) and hi == pytest.approx(0.9433, abs=5e-4)
    # k=0: lower bound exactly 0, upper z^2/(n+z^2)
    lo, hi = stats.wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(z2 / (10 + z2), abs=1e-12)
    # k=n=50: upper bound exactly 1, lower n/(n+z^2)
    lo, hi = stats.wilson_interval(50, 50)
    assert hi == 1.0 and lo == pytest.approx(50 / (50 + z2), abs=1e-12)
    # the old z = 1.96 is still available explicitly
    assert stats.wilson_interval(0, 10, z=1.96)[1] == pytest.approx(3.8416 / 13.8416, abs=1e-12)
    assert all(math.isnan(x) for x in stats.wilson_interval(0, 0))
    with pytest.raises(ValueError):
        stats.wilson_interval(11, 10)


# ---- McNemar / binomial ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("b,c,p", [(1, 6, 0.125), (6, 1, 0.125), (0, 5, 0.0625), (4, 4, 1.0), (0, 0, 1.0),
                                   (0, 10, 2 / 1024), (1, 2, 1.0), (2, 9, 2 * 67 / 2048)])
def test_mcnemar_exact_hand_worked(b, c, p):
    # (2, 9): P(X<=2 | n=11) = (1 + 11 + 55) / 2048
    assert stats.mcnemar_exact(b, c) == pytest.approx(p, rel=1e-12)


def test_binomial_tail_log_space_matches_exact(monkeypatch):
    exact = Fraction(sum(math.comb(300, i) for i in range(131)), 2**300)
    direct = stats.binom_cdf_half(130, 300)
    monkeypatch.setattr(stats, "_EXACT_INT_LIMIT", 10)  # force the log-space branch
    logspace = stats.binom_cdf_half(130, 300)
    assert direct == pytest.approx(float(exact), rel=1e-14)
    assert logspace == pytest.approx(float(exact), rel=1e-9)
    assert stats.binom_cdf_half(-1, 5) == 0.0 and stats.binom_cdf_half(5, 5) == 1.0


def test_mcnemar_large_n_is_finite_and_tiny():
    p = stats.mcnemar_exact(100, 400)
    assert 0.0 <= p < 1e-30


# ---- permutation test --------------------------------------------------------------------------------------------

def test_sign_flip_exact_hand_worked():
    # differences 1, 2, 3: of the 8 sign patterns only +++ and --- reach |sum| >= 6 -> p = 2/8
    p, how = stats.paired_permutation_test([0, 0, 0], [1, 2, 3])
    assert p == pytest.approx(0.25) and how.startswith("exact")
    # zero differences are held fixed; d = (0.5, -0.5): |sum| = 0 is reached by every pattern -> p = 1
    p, _ = stats.paired_permutation_test([0.2, 0.5, 0.9], [0.7, 0.5, 0.4])
    assert p == pytest.approx(1.0)
    assert stats.paired_permutation_test([0.3], [0.3])[0] == 1.0


def _micro_f1(items):
    tp = sum(i[0] for i in items)
    fp = sum(i[1] for i in items)
    fn = sum(i[2] for i in items)
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


def test_swap_permutation_with_corpus_aggregate_hand_worked():
    # 6 examples, 3 of them improve from (1,1,1) to (2,0,0). Swapping j of those 3 gives
    # delta = (3 - 2j)/12, so |delta| >= 0.25 only for j in {0, 3}: p = 2/8.
    a = [(1, 1, 1)] * 6
    b = [(2, 0, 0)] * 3 + [(1, 1, 1)] * 3
    p, how = stats.paired_permutation_test(a, b, aggregate=_micro_f1)
    assert p == pytest.approx(0.25) and how == "exact (2^3)"
    # all 6 go from F1 0 to 1: only the two extreme swaps reach |delta| = 1 -> 2/64
    p, _ = stats.paired_permutation_test([(0, 2, 2)] * 6, [(2, 0, 0)] * 6, aggregate=_micro_f1)
    assert p == pytest.approx(2 / 64)


def test_monte_carlo_agrees_with_exact():
    rng = np.random.default_rng(1)
    a = rng.random(14)
    b = a + rng.normal(0.08, 0.2, 14)
    exact, how = stats.paired_permutation_test(a, b)
    assert how == "exact (2^14)"
    mc, how = stats.paired_permutation_test(a, b, n_perm=20000, seed=3, exact_max_n=0)
    assert how == "Monte Carlo (20000)"
    assert mc == pytest.approx(exact, abs=0.012)


# ---- Holm --------------------------------------------------------------------------------------------------------

def test_holm_hand_worked():
    # sorted: .005*4=.02, .01*3=.03, .03*2=.06, .04*1=.04 -> cummax .06
    adj, rej = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert adj == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert rej == [True, False, False, True]
    adj, rej = stats.holm([0.5, float("nan"), 0.01])
    assert adj[0] == pytest.approx(0.5) and math.isnan(adj[1]) and adj[2] == pytest.approx(0.02)
    assert rej == [False, False, True]
    assert stats.holm([0.9, 0.8]) == ([1.0, 1.0], [False, False])  # 0.8*2 caps at 1; cummax
    assert stats.holm([]) == ([], [])


# ---- bootstrap ---------------------------------------------------------------------------------------------------

def test_bootstrap_aggregate_form_equals_vectorised_mean():
    values = [0.1, 0.4, 0.35, 0.9, 0.2, 0.6, 0.55]
    fast = stats.bootstrap_ci(values, n_boot=500, seed=7)
    slow = stats.bootstrap_ci(values, aggregate=lambda xs: float(np.mean(xs)), n_boot=500, seed=7)
    assert fast == pytest.approx(slow)
    assert fast[0] < np.mean(values) < fast[1]
    assert all(math.isnan(x) for x in stats.bootstrap_ci([], n_boot=100))


def test_paired_bootstrap_degenerate_and_errors():
    assert stats.paired_bootstrap_delta_ci([0, 0, 1], [1, 1, 2], n_boot=200) == pytest.approx((1.0, 1.0))
    with pytest.raises(ValueError):
        stats.paired_bootstrap_delta_ci([0, 1], [1], n_boot=10)


def test_paired_bootstrap_coverage_near_nominal():
    """200 simulated paired datasets (n=60): the 95% paired CI should cover the true delta ~95% of the time."""
    rng = np.random.default_rng(2024)
    true_delta, covered = 0.05, 0
    for i in range(200):
        a = rng.beta(2, 3, size=60)
        b = np.clip(a + true_delta + rng.normal(0, 0.15, size=60), -5, 5)  # unclipped in practice: mean shift kept
        lo, hi = stats.paired_bootstrap_delta_ci(a, b, n_boot=1000, seed=i)
        covered += lo <= true_delta <= hi
    assert 0.90 <= covered / 200 <= 0.99


# ---- helpers -----------------------------------------------------------------------------------------------------

def test_helpers():
    assert stats.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert math.isnan(stats.pearson([1, 1, 1], [1, 2, 3]))
    v, df = stats.pooled_variance([[0.1, 1.0, 0.1], [0.25, 1.0, 1 / 12], [5.0]])
    assert df == 4 and v == pytest.approx((0.54 + 0.4768518518) / 4, rel=1e-6)
    assert stats.quantile([100, 200, 300, 400, 500, 600, 700, 800], 0.95) == pytest.approx(765.0)
    assert stats.effect_verdict(0.1, 0.0, 0.2, 0.01) == "no detectable effect"  # touching 0 spans it
    assert stats.effect_verdict(0.1, 0.02, 0.2, 0.2) == "no detectable effect"  # CI and test disagree
    assert stats.effect_verdict(-0.1, -0.2, -0.02, 0.01) == "hurt"
    assert stats.effect_verdict(0.1, 0.02, 0.2, 0.01) == "improved"

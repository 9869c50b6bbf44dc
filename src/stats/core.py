"""Pure statistics: intervals, paired tests and multiple-comparison correction.

Pure functions (numpy only; no scipy). Conventions shared by every function here:

- Paired functions take `a` (the reference arm, e.g. baseline) and `b` (the arm under test, e.g. optimized), aligned
  item by item; a delta is always b - a.
- Where a corpus metric is not the plain mean (e.g. NER micro-F1 from per-example tp/fp/fn), pass `aggregate`: a
  function from a list of per-example items to the corpus score. Resampling then recomputes that aggregate on each
  resample instead of averaging per-example scores.
- Random procedures take a `seed` and are reproducible; degenerate inputs (n = 0) give NaN, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import product
from statistics import NormalDist
from typing import Any

import numpy as np

Aggregate = Callable[[list[Any]], float]

Z_95 = NormalDist().inv_cdf(0.975)  # two-sided 95% normal quantile, exactly (1.959963984540054), not 1.96


# ---- intervals -----------------------------------------------------------------------------------------------

def wilson_interval(k: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k/n (default z = Phi^-1(0.975): 95%).

    Behaves well at k=0 and k=n, where the normal (Wald) interval collapses. n=0 gives (nan, nan).
    """
    if n <= 0:
        return (float("nan"), float("nan"))
    if not 0 <= k <= n:
        raise ValueError(f"wilson_interval: k={k} outside [0, n={n}]")
    p = k / n
    z2 = z * z
    denom = 1 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    lo, hi = max(0.0, center - half), min(1.0, center + half)
    # k=0 / k=n: the bound is exactly 0 / 1 (floating error could leave 1e-17).
    return (0.0 if k == 0 else lo, 1.0 if k == n else hi)


def percentile_interval(samples: Sequence[float] | np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    """The (alpha/2, 1-alpha/2) percentiles of bootstrap replicates, ignoring NaN replicates."""
    arr = np.asarray(samples, dtype=float)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.percentile(arr, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return (float(lo), float(hi))


def _resample_indices(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    return rng.integers(0, n, size=(n_boot, n))


def bootstrap_ci(values: Sequence[Any], *, aggregate: Aggregate | None = None, n_boot: int = 2000, seed: int = 0,
                 alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap interval of a corpus statistic, resampling examples with replacement.

    Without `aggregate`, `values` are numbers and the statistic is their mean (vectorised). With `aggregate`,
    `values` may be any per-example items (e.g. Score objects) and each resample's statistic is
    `aggregate([values[i] for i in resampled indices])`. Empty input gives (nan, nan).
    """
    n = len(values)
    if n == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = _resample_indices(rng, n, n_boot)
    if aggregate is None:
        arr = np.asarray(values, dtype=float)
        reps = arr[idx].mean(axis=1)
    else:
        items = list(values)
        reps = np.array([aggregate([items[i] for i in row]) for row in idx], dtype=float)
    return percentile_interval(reps, alpha)


def paired_bootstrap_delta_ci(a: Sequence[Any], b: Sequence[Any], *, aggregate: Aggregate | None = None,
                              n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile interval of the paired delta statistic(b) - statistic(a), resampling example pairs.

    a[i] and b[i] must describe the same example; the same resampled indices are used for both arms, which keeps
    the pairing (and so the usually much narrower paired interval). The statistic is the mean, or `aggregate`.
    """
    if len(a) != len(b):
        raise ValueError(f"paired_bootstrap_delta_ci: arms differ in length ({len(a)} vs {len(b)})")
    n = len(a)
    if n == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = _resample_indices(rng, n, n_boot)
    if aggregate is None:
        d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
        reps = d[idx].mean(axis=1)
    else:
        la, lb = list(a), list(b)
        reps = np.array([aggregate([lb[i] for i in row]) - aggregate([la[i] for i in row]) for row in idx],
                        dtype=float)
    return percentile_interval(reps, alpha)


# ---- exact binomial / McNemar ------------------------------------------------------------------------------------

_EXACT_INT_LIMIT = 20000  # above this many trials, sum the tail in log space instead of with big integers


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def binom_cdf_half(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), computed exactly (integer sums; log-space beyond 20,000 trials)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if n <= _EXACT_INT_LIMIT:
        # Python's int / int division is correctly rounded, so this is exact up to one final rounding.
        return sum(math.comb(n, i) for i in range(k + 1)) / (1 << n)
    logs = [_log_comb(n, i) for i in range(k + 1)]
    top = max(logs)
    return math.exp(top + math.log(math.fsum(math.exp(x - top) for x in logs)) - n * math.log(2))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar test: binomial test of the discordant pairs, b ~ Binomial(b + c, 1/2).

    b = pairs right under A and wrong under B, c = the reverse. p = min(1, 2 * P(X <= min(b, c))).
    No discordant pairs gives p = 1.
    """
    if b < 0 or c < 0:
        raise ValueError("mcnemar_exact: counts must be >= 0")
    n = b + c
    if n == 0:
        return 1.0
    return min(1.0, 2.0 * binom_cdf_half(min(b, c), n))


_TIE_RTOL = 1e-12  # relative tolerance for a permuted statistic to tie the observed one (float rounding only)


# ---- permutation test --------------------------------------------------------------------------------------------

def paired_permutation_test(a: Sequence[Any], b: Sequence[Any], *, aggregate: Aggregate | None = None,
                            n_perm: int = 10000, seed: int = 0, exact_max_n: int = 16) -> tuple[float, str]:
    """Two-sided paired randomisation test of statistic(b) - statistic(a) = 0.

    Under the null, the two arms' labels are exchangeable within each example, so each pair may be swapped.
    For the mean this is the sign-flip test on the differences b[i] - a[i] (vectorised); with `aggregate` each
    randomised dataset recomputes the corpus statistic on the swapped arms.

    Pairs that cannot change the statistic when swapped (equal per-example values in the mean case, identical
    items with `aggregate`) are held fixed. When at most `exact_max_n` pairs remain, all 2^m swaps are enumerated
    (exact p); otherwise `n_perm` random swaps give the Monte Carlo estimate (1 + hits) / (1 + n_perm).
    Returns (p, method) where method says "exact (2^m)" or "Monte Carlo (n_perm)".
    """
    if len(a) != len(b):
        raise ValueError(f"paired_permutation_test: arms differ in length ({len(a)} vs {len(b)})")
    if len(a) == 0:
        return (float("nan"), "no pairs")
    rng = np.random.default_rng(seed)
    if aggregate is None:
        d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
        d = d[d != 0]
        m = d.size
        if m == 0:
            return (1.0, "exact (no differing pairs)")
        observed = abs(d.sum())
        # Ties are equal up to float rounding of a sum (~1e-15 relative), never "close": a 1e-9 tolerance counted
        # near-ties of continuous scores as ties (found against scipy.stats.permutation_test).
        tol = _TIE_RTOL * max(1.0, float(np.abs(d).sum()))
        if m <= exact_max_n:
            signs = np.array(list(product((1.0, -1.0), repeat=m)))
            stats = np.abs(signs @ d)
            return (float(np.mean(stats >= observed - tol)), f"exact (2^{m})")
        hits, done, chunk = 0, 0, 4096
        while done < n_perm:
            k = min(chunk, n_perm - done)
            signs = rng.choice((-1.0, 1.0), size=(k, m))
            hits += int(np.sum(np.abs(signs @ d) >= observed - tol))
            done += k
        return ((1 + hits) / (1 + n_perm), f"Monte Carlo ({n_perm})")

    la, lb = list(a), list(b)
    movable = [i for i in range(len(la)) if la[i] != lb[i]]
    fixed = [i for i in range(len(la)) if la[i] == lb[i]]
    if not movable:
        return (1.0, "exact (no differing pairs)")
    base_a = [la[i] for i in fixed]
    base_b = [lb[i] for i in fixed]

    def delta(swaps: Sequence[bool]) -> float:
        arm_a, arm_b = list(base_a), list(base_b)
        for i, s in zip(movable, swaps):
            arm_a.append(lb[i] if s else la[i])
            arm_b.append(la[i] if s else lb[i])
        return aggregate(arm_b) - aggregate(arm_a)

    observed = abs(delta([False] * len(movable)))
    tol = _TIE_RTOL * max(1.0, observed)
    m = len(movable)
    if m <= exact_max_n:
        stats = [abs(delta(s)) for s in product((False, True), repeat=m)]
        stats_arr = np.array(stats, dtype=float)
        return (float(np.mean(stats_arr >= observed - tol)), f"exact (2^{m})")
    draws = rng.random((n_perm, m)) < 0.5
    hits = sum(1 for row in draws if abs(delta(row)) >= observed - tol)
    return ((1 + hits) / (1 + n_perm), f"Monte Carlo ({n_perm})")


# ---- multiple comparisons ----------------------------------------------------------------------------------------

def holm(pvalues: Sequence[float], alpha: float = 0.05) -> tuple[list[float], list[bool]]:
    """Holm-Bonferroni step-down: adjusted p-values and reject flags, in the input order.

    NaN p-values (comparisons that could not be tested) are left out of the family: their adjusted value is NaN
    and they are never rejected.
    """
    p = [float(x) for x in pvalues]
    valid = [i for i, x in enumerate(p) if not math.isnan(x)]
    m = len(valid)
    adjusted = [float("nan")] * len(p)
    order = sorted(valid, key=lambda i: p[i])
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    reject = [not math.isnan(x) and x <= alpha for x in adjusted]
    return adjusted, reject


# ---- small helpers -----------------------------------------------------------------------------------------------

def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation; NaN when fewer than 2 points or either vector is constant."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xa.size != ya.size or xa.size < 2:
        return float("nan")
    xd, yd = xa - xa.mean(), ya - ya.mean()
    denom = math.sqrt(float((xd * xd).sum()) * float((yd * yd).sum()))
    return float((xd * yd).sum() / denom) if denom > 0 else float("nan")


def pooled_variance(groups: Sequence[Sequence[float]]) -> tuple[float, int]:
    """Pooled within-group sample variance sum_g sum_i (x - mean_g)^2 / sum_g (n_g - 1), and its degrees of freedom.

    Groups with fewer than 2 values carry no within-group information and are skipped. No df gives (nan, 0).
    """
    ss, df = 0.0, 0
    for g in groups:
        arr = np.asarray(g, dtype=float)
        if arr.size < 2:
            continue
        ss += float(((arr - arr.mean()) ** 2).sum())
        df += arr.size - 1
    return (ss / df if df else float("nan"), df)


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) with linear interpolation (numpy's default); NaN for no values."""
    arr = np.asarray(values, dtype=float)
    return float(np.percentile(arr, 100 * q)) if arr.size else float("nan")


def excludes_zero(lo: float, hi: float) -> bool:
    """True when an interval lies strictly on one side of zero (touching zero counts as spanning it)."""
    return not (math.isnan(lo) or math.isnan(hi)) and (lo > 0 or hi < 0)


def effect_verdict(delta: float, lo: float, hi: float, p: float, alpha: float = 0.05) -> str:
    """'improved' / 'hurt' only when the paired CI excludes 0 AND the paired test gives p < alpha;
    otherwise 'no detectable effect' (a point estimate alone is never called a gain or a loss)."""
    if math.isnan(delta):
        return "not comparable"
    if excludes_zero(lo, hi) and not math.isnan(p) and p < alpha:
        return "improved" if delta > 0 else "hurt"
    return "no detectable effect"

"""Statistical power of the study's paired comparisons: what effect a test could have seen at its n, and the n a
target effect needs.

Pure functions (numpy and the standard library; scipy/statsmodels only check them in tests). Conventions:

- Effects are differences of proportions / mean scores on the 0..1 scale (0.10 = ten points), two-sided tests at
  `alpha` (default 0.05), target power `power` (default 0.80).
- Binary metrics are tested with the exact McNemar test (stats.core.mcnemar_exact). Its power is computed exactly:
  the number of discordant pairs M ~ Binomial(n, discordance); given M = m, the pairs won by the arm under test
  ~ Binomial(m, (discordance + delta) / (2 * discordance)); the test rejects when the smaller count is at most the
  exact critical value of Binomial(m, 1/2). Above EXACT_MAX_N pairs the normal approximation of Connor (1987)
  is used. The discordance (share of pairs the two arms disagree on) is held fixed as the effect varies.
- Continuous metrics are tested with a paired randomisation test; its power is taken as that of the paired t-test
  (asymptotically equivalent), computed from the noncentral t distribution by numerical integration, given the
  standard deviation of the per-example differences.
- "Minimum detectable effect" (MDE) = the smallest true delta the test detects with the target power. It is
  math.inf when no delta the data allow can reach that power (e.g. 2 discordant pairs out of 50).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np

ALPHA = 0.05
POWER = 0.80
EXACT_MAX_N = 2000  # exact McNemar power up to this many pairs, Connor's normal approximation beyond
_N = NormalDist()


# ---- exact McNemar --------------------------------------------------------------------------------------------------

_LOG_FACTORIAL = np.zeros(1)


def _log_factorials(m: int) -> np.ndarray:
    """log(k!) for k = 0..m (a growing module-level table: power searches evaluate thousands of pmfs)."""
    global _LOG_FACTORIAL
    if _LOG_FACTORIAL.size <= m:
        size = max(m + 1, 2 * _LOG_FACTORIAL.size)
        _LOG_FACTORIAL = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, size, dtype=float)))])
    return _LOG_FACTORIAL[: m + 1]


def _log_binom_pmf(m: int, q: float) -> np.ndarray:
    """log P(X = k), k = 0..m, for X ~ Binomial(m, q) (q strictly inside (0, 1) or handled by the caller)."""
    k = np.arange(m + 1)
    lg = _log_factorials(m)
    return lg[m] - lg - lg[::-1] + k * math.log(q) + (m - k) * math.log1p(-q)


def _binom_pmf(m: int, q: float) -> np.ndarray:
    if q <= 0.0:
        out = np.zeros(m + 1)
        out[0] = 1.0
        return out
    if q >= 1.0:
        out = np.zeros(m + 1)
        out[m] = 1.0
        return out
    return np.exp(_log_binom_pmf(m, q))


@lru_cache(maxsize=65536)
def mcnemar_critical(m: int, alpha: float = ALPHA) -> int:
    """Largest k with 2 * P(X <= k) <= alpha for X ~ Binomial(m, 1/2): the exact McNemar test on m discordant pairs
    rejects when min(b, c) <= k. -1 when no split of m pairs can reject."""
    if m <= 0:
        return -1
    cdf = np.cumsum(_binom_pmf(m, 0.5))
    ok = np.nonzero(2.0 * cdf <= alpha * (1 + 1e-12))[0]
    return int(ok[-1]) if ok.size else -1


def _mass_range(n: int, p: float) -> range:
    """The m values holding all but ~1e-15 of Binomial(n, p)'s mass (the rest cannot move a power figure)."""
    sd = math.sqrt(max(n * p * (1 - p), 1e-12))
    lo, hi = max(0, int(n * p - 12 * sd) - 1), min(n, int(n * p + 12 * sd) + 2)
    return range(lo, hi + 1)


def mcnemar_power(n: int, discordance: float, delta: float, alpha: float = ALPHA) -> float:
    """Power of the two-sided exact McNemar test on n pairs with the given discordance, for a true delta
    (b - a, on 0..1). |delta| must not exceed the discordance; NaN when it does."""
    psi, d = float(discordance), abs(float(delta))
    if n <= 0 or psi <= 0.0:
        return 0.0
    if d > psi + 1e-12 or psi > 1.0:
        return float("nan")
    if n > EXACT_MAX_N:
        return connor_power(n, psi, d, alpha)
    q = min(1.0, (psi + d) / (2 * psi))
    outer = _binom_pmf(n, psi)
    total = 0.0
    for m in _mass_range(n, psi):
        k = mcnemar_critical(m, alpha)
        if k < 0 or outer[m] == 0.0:
            continue
        pmf = _binom_pmf(m, q)
        total += outer[m] * (pmf[: k + 1].sum() + pmf[m - k:].sum())
    return float(min(1.0, total))


def connor_power(n: int, discordance: float, delta: float, alpha: float = ALPHA) -> float:
    """Normal approximation of McNemar's power (Connor 1987): Phi((|d| sqrt(n) - z sqrt(psi)) / sqrt(psi - d^2))."""
    psi, d = float(discordance), abs(float(delta))
    if n <= 0 or psi <= 0.0:
        return 0.0
    spread = psi - d * d
    z = _N.inv_cdf(1 - alpha / 2)
    if spread <= 0:
        return 1.0
    return _N.cdf((d * math.sqrt(n) - z * math.sqrt(psi)) / math.sqrt(spread))


def _solve_increasing(f, lo: float, hi: float, target: float, tol: float = 1e-7) -> float:
    """The smallest x in [lo, hi] with f(x) >= target for f non-decreasing (bisection); inf when f(hi) < target."""
    if f(hi) < target:
        return math.inf
    if f(lo) >= target:
        return lo
    for _ in range(200):
        mid = (lo + hi) / 2
        if f(mid) >= target:
            hi = mid
        else:
            lo = mid
        if hi - lo <= tol:
            break
    return hi


def mde_binary(n: int, discordance: float, power: float = POWER, alpha: float = ALPHA) -> float:
    """Minimum detectable |delta| of the exact McNemar test at n pairs and this discordance (inf: none)."""
    if n <= 0 or discordance <= 0:
        return math.inf
    return _solve_increasing(lambda d: mcnemar_power(n, discordance, d, alpha), 0.0, float(discordance), power)


def n_binary(delta: float, discordance: float, power: float = POWER, alpha: float = ALPHA,
             max_n: int = 1_000_000) -> int | None:
    """The smallest n whose exact McNemar power reaches `power` for this delta and discordance (None: not within
    max_n; exact power is not monotone in n, so a slightly larger n may dip just below the target)."""
    d, psi = abs(delta), discordance
    if d <= 0 or psi <= 0 or d > psi:
        return None
    z_a, z_b = _N.inv_cdf(1 - alpha / 2), _N.inv_cdf(power)
    guess = math.ceil(((z_a * math.sqrt(psi) + z_b * math.sqrt(psi - d * d)) / d) ** 2)
    if guess > EXACT_MAX_N:
        return guess if guess <= max_n else None
    # Coarse steps up from below the normal approximation's n (the exact test is the more conservative), then the
    # first n of the last step that reaches the target.
    n, step = max(2, int(guess * 0.85)), max(1, guess // 60)
    while mcnemar_power(n, psi, d, alpha) < power:
        n += step
        if n > max_n:
            return None
    for m in range(max(2, n - step + 1), n + 1):
        if mcnemar_power(m, psi, d, alpha) >= power:
            return m
    return n


def discordance_prior(baseline: float, delta: float) -> float:
    """The discordance expected when the two arms err independently at accuracies baseline and baseline + delta
    (an upper bound in practice: arms evaluated on the same items err together, which lowers it)."""
    p1 = min(max(baseline, 0.0), 1.0)
    p2 = min(max(baseline + delta, 0.0), 1.0)
    return p1 * (1 - p2) + p2 * (1 - p1)


# ---- paired t (continuous metrics) ----------------------------------------------------------------------------------

@lru_cache(maxsize=256)
def _scale_grid(df: int) -> tuple[np.ndarray, np.ndarray]:
    """Points s and Simpson weights w * density(s) for s = sqrt(V / df), V ~ chi-square(df)."""
    spread = 1.0 / math.sqrt(2.0 * df)
    hi = 1.0 + 14.0 * spread + (6.0 if df < 4 else 0.0)
    s = np.linspace(0.0, hi, 4001)
    log_c = (df / 2) * math.log(df) - (df / 2 - 1) * math.log(2) - math.lgamma(df / 2)
    with np.errstate(divide="ignore"):
        log_f = log_c + (df - 1) * np.log(s) - df * s * s / 2
    f = np.exp(log_f)
    f[0] = 0.0 if df > 1 else math.exp(log_c)
    w = np.ones_like(s)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return s, w * f * (s[1] - s[0]) / 3.0


_ERFC = np.frompyfunc(math.erfc, 1, 1)


def _phi(x: np.ndarray) -> np.ndarray:
    """The standard normal CDF, elementwise, to full double precision (math.erfc; numpy has no erf)."""
    return 0.5 * _ERFC(-x / math.sqrt(2.0)).astype(float)


def t_sf(t: float, df: int) -> float:
    """P(T > t) for Student's t with df degrees of freedom (numerical integration)."""
    s, w = _scale_grid(df)
    return float((w * _phi(-t * s)).sum())


@lru_cache(maxsize=4096)
def t_quantile(p: float, df: int) -> float:
    """The p-quantile (p > 0.5) of Student's t with df degrees of freedom."""
    lo, hi = 0.0, 1e4
    for _ in range(80):
        mid = (lo + hi) / 2
        if 1 - t_sf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return (lo + hi) / 2


def paired_t_power(n: int, sd_diff: float, delta: float, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test on n pairs whose differences have standard deviation sd_diff."""
    if n < 2 or not sd_diff > 0:
        return float("nan")
    df = n - 1
    crit = t_quantile(1 - alpha / 2, df)
    lam = abs(delta) * math.sqrt(n) / sd_diff
    s, w = _scale_grid(df)
    return float((w * (_phi(lam - crit * s) + _phi(-crit * s - lam))).sum())


def mde_continuous(n: int, sd_diff: float, power: float = POWER, alpha: float = ALPHA) -> float:
    """Minimum detectable |mean difference| of a paired test at n pairs with this sd of differences."""
    if n < 2 or not sd_diff > 0:
        return math.inf if n < 2 else 0.0
    upper = 20 * sd_diff
    return _solve_increasing(lambda d: paired_t_power(n, sd_diff, d, alpha), 0.0, upper, power, tol=1e-9)


def n_continuous(delta: float, sd_diff: float, power: float = POWER, alpha: float = ALPHA,
                 max_n: int = 1_000_000) -> int | None:
    """The smallest n whose paired t-test power reaches `power` for this mean difference (None: not within max_n)."""
    if delta == 0 or not sd_diff > 0:
        return None
    z_a, z_b = _N.inv_cdf(1 - alpha / 2), _N.inv_cdf(power)
    n = max(2, math.floor(((z_a + z_b) * sd_diff / abs(delta)) ** 2))
    if n > max_n:
        return None
    while paired_t_power(n, sd_diff, delta, alpha) < power:  # the t correction adds a few pairs to the normal n
        n += 1
        if n > max_n:
            return None
    while n > 2 and paired_t_power(n - 1, sd_diff, delta, alpha) >= power:
        n -= 1
    return n


# ---- what consolidation calls ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DetectableEffect:
    """What a paired comparison could have seen: its minimum detectable effect at the target power."""

    mde: float  # smallest true |delta| detected with `power` (inf: none the data allow; nan: not estimable)
    n: int
    power: float
    alpha: float
    binary: bool
    spread: float  # discordance (binary) or sd of the per-example differences (continuous)
    basis: str  # how it was computed, for tables and footnotes


def minimum_detectable_effect(a: Sequence[float], b: Sequence[float], *, binary: bool, power: float = POWER,
                              alpha: float = ALPHA) -> DetectableEffect:
    """The MDE of the paired test between per-example scores a (reference arm) and b (arm under test), at their n
    and their observed discordance (binary: share of pairs where exactly one arm is right) or sd of differences."""
    if len(a) != len(b):
        raise ValueError(f"minimum_detectable_effect: arms differ in length ({len(a)} vs {len(b)})")
    n = len(a)
    nan = float("nan")
    if n == 0:
        return DetectableEffect(nan, 0, power, alpha, binary, nan, "no shared examples")
    if binary:
        psi = sum(1 for x, y in zip(a, b) if (x >= 0.5) != (y >= 0.5)) / n
        if psi == 0:
            return DetectableEffect(nan, n, power, alpha, True, 0.0, "no discordant pairs: discordance unknown")
        return DetectableEffect(mde_binary(n, psi, power, alpha), n, power, alpha, True, psi,
                                f"exact McNemar, n={n}, observed discordance {psi:.3f}")
    diffs = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    sd = float(diffs.std(ddof=1)) if n > 1 else nan
    if not sd > 0:
        return DetectableEffect(nan, n, power, alpha, False, sd, "no spread in the differences: sd unknown")
    return DetectableEffect(mde_continuous(n, sd, power, alpha), n, power, alpha, False, sd,
                            f"paired t, n={n}, sd of differences {sd:.3f}")

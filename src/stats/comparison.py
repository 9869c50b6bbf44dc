"""One task's scores as evidence: a corpus score with its 95% interval, and a paired comparison of two arms."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from src.stats import core as stats

N_PERM_MEAN = 10000  # sign-flip permutations for mean metrics (vectorised)
N_PERM_AGGREGATE = 2000  # swap permutations when the corpus metric must be recomputed (e.g. micro-F1)


@dataclass(frozen=True)
class Metric:
    """What the statistics need to know about a task's metric."""

    binary: bool  # per-example 0/1: Wilson intervals and exact McNemar
    aggregate: Callable[[list[Any]], float]  # Scores -> corpus score
    mean_aggregate: bool  # the corpus score is the mean of per-example scores

    @classmethod
    def of(cls, task: Any) -> Metric:
        """From anything shaped like a Task (binary, aggregate, mean_aggregate)."""
        return cls(bool(task.binary), task.aggregate, bool(task.mean_aggregate))


@dataclass(frozen=True)
class ScoreInterval:
    value: float
    lo: float
    hi: float
    n: int
    method: str


@dataclass
class PairedDelta:
    """b vs a on the same examples: delta = score(b) - score(a)."""

    n_shared: int
    a_score: float
    b_score: float
    delta: float
    lo: float
    hi: float
    p: float
    test: str
    verdict: str  # improved | hurt | no detectable effect | not comparable


def score_interval(scores: list[Any], metric: Metric, *, n_boot: int = 2000, seed: int = 0) -> ScoreInterval:
    """Wilson for binary metrics; percentile bootstrap (recomputing the corpus metric) for the others."""
    n = len(scores)
    value = metric.aggregate(scores) if scores else float("nan")
    if metric.binary:
        lo, hi = stats.wilson_interval(int(round(sum(s.score for s in scores))), n)
        return ScoreInterval(value, lo, hi, n, "Wilson")
    if metric.mean_aggregate:
        lo, hi = stats.bootstrap_ci([s.score for s in scores], n_boot=n_boot, seed=seed)
    else:
        lo, hi = stats.bootstrap_ci(scores, aggregate=metric.aggregate, n_boot=n_boot, seed=seed)
    return ScoreInterval(value, lo, hi, n, "bootstrap")


def paired_delta(sa: list[Any], sb: list[Any], metric: Metric, *, n_boot: int = 2000, seed: int = 0,
                 words: tuple[str, str] = ("lost", "gained")) -> PairedDelta:
    """Paired bootstrap CI of the delta and a paired p-value (exact McNemar for binary metrics, permutation
    otherwise). `sa`/`sb` are Scores aligned example by example; `words` name McNemar's discordant pairs."""
    n = len(sa)
    nan = float("nan")
    if n == 0:
        return PairedDelta(0, nan, nan, nan, nan, nan, nan, "no shared examples", "not comparable")
    a_score, b_score = metric.aggregate(sa), metric.aggregate(sb)
    delta = b_score - a_score
    va, vb = [s.score for s in sa], [s.score for s in sb]
    if metric.mean_aggregate:
        lo, hi = stats.paired_bootstrap_delta_ci(va, vb, n_boot=n_boot, seed=seed)
    else:
        lo, hi = stats.paired_bootstrap_delta_ci(sa, sb, aggregate=metric.aggregate, n_boot=n_boot, seed=seed)
    if metric.binary:
        b_cnt = sum(1 for x, y in zip(va, vb) if x >= 0.5 > y)
        c_cnt = sum(1 for x, y in zip(va, vb) if y >= 0.5 > x)
        p = stats.mcnemar_exact(b_cnt, c_cnt)
        test = f"McNemar exact ({b_cnt} {words[0]}, {c_cnt} {words[1]})"
    elif metric.mean_aggregate:
        p, how = stats.paired_permutation_test(va, vb, n_perm=N_PERM_MEAN, seed=seed)
        test = f"sign-flip permutation, {how}"
    else:
        p, how = stats.paired_permutation_test(sa, sb, aggregate=metric.aggregate, n_perm=N_PERM_AGGREGATE, seed=seed)
        test = f"swap permutation of the corpus metric, {how}"
    return PairedDelta(n, a_score, b_score, delta, lo, hi, p, test, stats.effect_verdict(delta, lo, hi, p))

"""Stability of an arm evaluated with --repeats k: its mean score with an interval over examples and repeats, the
run-to-run spread of the corpus score, and how often an example's attempts agree.

- Mean score: the mean over examples of each example's mean over its attempts, with a 95% percentile bootstrap
  that resamples examples with all their attempts (a cluster bootstrap: it carries the variance between examples
  and the variance between repeats of one example).
- Run-to-run spread: the task's corpus score of each repeat index r (attempt r of every example, as one run would
  have scored) — their sd (n − 1) and range.
- Per-example agreement: binary tasks — the share of examples whose k attempts all agree (all right or all wrong);
  continuous tasks — the share whose attempts all have the same score; and the mean sd of an example's scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from src.consolidation.inputs import ArmKey, Inputs, TaskInfo, Unit
from src.results.record import record_score
from src.stats import core as stats


@dataclass
class Stability:
    key: ArmKey
    k: int
    n: int  # examples
    complete: int  # examples with all k attempts
    mean: float
    lo: float
    hi: float
    run_scores: list[float]  # corpus score per repeat index
    run_sd: float
    run_min: float
    run_max: float
    agreement: float  # share of examples whose attempts all agree
    mean_example_sd: float


def _sd(xs: list[float]) -> float:
    if len(xs) < 2:
        return float("nan")
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def stability_of(u: Unit, ti: TaskInfo | Any, n_boot: int, seed: int) -> Stability:
    """One arm's stability; `ti` is its task (anything with binary and aggregate: consolidation's TaskInfo, or a
    Task when the demo-curve and tipping-point studies ask about one of their points)."""
    groups = list(u.by_attempts.values())
    means = [sum(r.score for r in g) / len(g) for g in groups]
    lo, hi = stats.bootstrap_ci(means, n_boot=n_boot, seed=seed)
    runs = []
    for r in range(u.repeats):
        run = [record_score(a) for a in u.attempts if a.repeat == r]
        if run:
            runs.append(ti.aggregate(run))
    if ti.binary:
        agree = [len({a.is_correct for a in g}) == 1 for g in groups]
    else:
        agree = [len({round(a.score, 9) for a in g}) == 1 for g in groups]
    sds = [_sd([a.score for a in g]) for g in groups if len(g) > 1]
    return Stability(key=(u.arm, u.model, u.task), k=u.repeats, n=len(groups),
                     complete=sum(1 for g in groups if len(g) == u.repeats),
                     mean=sum(means) / len(means) if means else float("nan"), lo=lo, hi=hi, run_scores=runs,
                     run_sd=_sd(runs), run_min=min(runs) if runs else float("nan"),
                     run_max=max(runs) if runs else float("nan"),
                     agreement=sum(agree) / len(agree) if agree else float("nan"),
                     mean_example_sd=sum(sds) / len(sds) if sds else float("nan"))


def stability(inputs: Inputs, n_boot: int, seed: int) -> dict[ArmKey, Stability]:
    """Every arm recorded with more than one attempt per example."""
    return {k: stability_of(u, inputs.tinfo[u.task], n_boot, seed) for k, u in inputs.unit.items() if u.repeats > 1}

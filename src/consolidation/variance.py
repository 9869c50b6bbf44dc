"""Variance analysis of the optimization deltas: does the model or the task decide whether optimization helps?"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from src.consolidation.arms import Paired
from src.consolidation.format import is_missing
from src.stats import core as stats


@dataclass
class TaskTier:
    """How consistently one task's deltas go one way across models (verdicts uncorrected)."""

    task: str
    n_models: int
    improved: int
    hurt: int
    no_effect: int
    positive: int  # positive point estimates
    mean_delta: float
    tier: str


@dataclass
class Variance:
    within_task: float  # pooled variance of deltas within tasks (across models)
    df_task: int
    within_model: float  # pooled variance of deltas within models (across tasks)
    df_model: int
    ratio: float  # within-task / within-model
    mean_r: float  # mean pairwise Pearson r of the models' delta vectors
    n_pairs: int  # model pairs behind mean_r (sharing >= 3 tasks)
    tiers: list[TaskTier]


def _tier(up: int, down: int, n: int) -> str:
    if up == n:
        return "all improved"
    if down == n:
        return "all hurt"
    if up and down:
        return "mixed (some improved, some hurt)"
    if up:
        return "some improved, none hurt"
    if down:
        return "some hurt, none improved"
    return "no detectable effect for any model"


def variance(deltas: dict[tuple[str, str], Paired], tasks: list[str]) -> Variance:
    """From the optimized − baseline deltas keyed by (model, task); deltas that are not numbers are left out."""
    ds = {k: d for k, d in deltas.items() if not is_missing(d.delta)}
    by_task, by_model = defaultdict(list), defaultdict(list)
    for (m, t), d in ds.items():
        by_task[t].append(d.delta)
        by_model[m].append(d.delta)
    v_task, df_task = stats.pooled_variance(list(by_task.values()))
    v_model, df_model = stats.pooled_variance(list(by_model.values()))
    ratio = v_task / v_model if not (is_missing(v_task) or is_missing(v_model)) and v_model > 0 else float("nan")
    # Mean pairwise Pearson r of the models' delta vectors over the tasks they share (>= 3 tasks).
    rs = []
    ms = sorted(by_model)
    for i in range(len(ms)):
        for j in range(i + 1, len(ms)):
            common = [t for t in tasks if (ms[i], t) in ds and (ms[j], t) in ds]
            if len(common) >= 3:
                r = stats.pearson([ds[(ms[i], t)].delta for t in common], [ds[(ms[j], t)].delta for t in common])
                if not is_missing(r):
                    rs.append(r)
    tiers = []
    for t in tasks:
        dd = [d for (_, t2), d in ds.items() if t2 == t]
        if not dd:
            continue
        up = sum(1 for d in dd if d.verdict == "improved")
        down = sum(1 for d in dd if d.verdict == "hurt")
        tiers.append(TaskTier(t, len(dd), up, down, len(dd) - up - down, sum(1 for d in dd if d.delta > 0),
                              float(np.mean([d.delta for d in dd])), _tier(up, down, len(dd))))
    return Variance(v_task, df_task, v_model, df_model, ratio, float(np.mean(rs)) if rs else float("nan"), len(rs),
                    tiers)

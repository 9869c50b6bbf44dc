"""Honest selection: a "best" condition (the best n of the demo curves and the tipping point; the scoreboard's best
local model, for consolidation) is chosen on one half of the eval examples and tested on the other, and a family of
tests within one (model, task) pair is Holm-corrected. Pure functions over ids and scores (no project imports
beyond stats.core).

Choosing the best of several conditions on the eval set and then testing it on the same set overstates it (the
winner's curse). The eval examples are therefore split, by a seeded permutation of their ids that does not depend
on their order, into a selection half (the choice is made there) and a test half (the reported score, lift, CI and
p of the chosen condition come only from there).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from src.stats import core as stats

SELECTION_SEED = 2025


def selection_split(ids: Sequence[str], seed: int = SELECTION_SEED) -> tuple[list[str], list[str]]:
    """(selection ids, test ids): a seeded half of the ids, and the rest (the test half gets the odd one). The same
    ids give the same halves whatever order they come in."""
    order = sorted(set(ids))
    random.Random(seed).shuffle(order)
    cut = len(order) // 2
    chosen = set(order[:cut])
    return [i for i in ids if i in chosen], [i for i in ids if i not in chosen]


def choose_best(candidates: dict[Any, dict[str, Any]], ids: Sequence[str],
                aggregate: Callable[[list[Any]], float]) -> Any | None:
    """The candidate (a demo count n, or a model key) with the highest corpus score on `ids`; ties go to the
    smallest key. `candidates` maps key -> {example id: Score}; candidates missing an id are not eligible."""
    usable = {n: scores for n, scores in candidates.items() if all(i in scores for i in ids)}
    if not usable or not ids:
        return None
    value = {n: aggregate([scores[i] for i in ids]) for n, scores in usable.items()}
    best = max(value.values())
    return min(n for n, v in value.items() if v == best)


@dataclass(frozen=True)
class CorrectedTest:
    p: float  # the raw p-value
    p_adjusted: float  # Holm-adjusted within its family
    verdict: str  # improved | hurt | no detectable effect | not comparable, on the adjusted p


def holm_within(tests: dict[Any, tuple[float, float, float, float]], alpha: float = 0.05) -> dict[Any, CorrectedTest]:
    """Holm correction over one family of paired tests {key: (delta, ci_low, ci_high, p)}; each verdict then needs
    the CI to exclude 0 AND the Holm-adjusted p < alpha."""
    keys = list(tests)
    adjusted, _ = stats.holm([tests[k][3] for k in keys], alpha)
    out = {}
    for k, adj in zip(keys, adjusted):
        delta, lo, hi, p = tests[k]
        verdict = stats.effect_verdict(delta, lo, hi, adj if not math.isnan(adj) else float("nan"), alpha)
        out[k] = CorrectedTest(p, adj, verdict)
    return out

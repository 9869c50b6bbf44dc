"""A study point (a demo-curve condition, a tipping-point cell) read back from its unit's CSV, analysed by the rules
consolidation applies to every arm, so a study and the golden files never disagree about one result file:

- with --repeats k the CSV holds k attempts per example; each example counts once, scored by the mean of its
  attempts (consolidation.inputs.Unit), and every paired statistic runs over those per-example means;
- the metric is then the mean of per-example means, its interval a bootstrap over examples each carrying its k
  attempts (a cluster bootstrap: between-example and between-repeat variance), its paired test a permutation test
  (consolidation.arms.metric_for); with k = 1 everything is exactly what it was (the task's own metric);
- the run-to-run spread is consolidation's stability figures (consolidation.stability.stability_of): the corpus
  score of each repeat index, their sd, and the share of examples whose attempts all agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from src.consolidation.arms import metric_for
from src.consolidation.inputs import Unit
from src.consolidation.stability import Stability, stability_of
from src.results.files import csv_float, read_csv
from src.results.record import record_score
from src.stats import core as stats
from src.stats.comparison import Metric
from src.tasks.example import Score

N_BOOT = 2000  # score_interval's default: a point's interval is what it was before repeats existed
SPREAD_COLUMNS = ["repeats", "run_sd", "agreement"]  # trailing columns of the studies' curve files


@dataclass
class Point:
    """One evaluated point: its per-example scores (attempt means when k > 1, in the order asked) and, with
    repeats, its stability figures."""

    unit: Unit
    scores: dict[str, Score]
    stability: Stability | None

    @property
    def repeats(self) -> int:
        return self.unit.repeats


def load_point(csv_path: Path, arm: str, model: str, task: Any, ids: Sequence[str] | None = None) -> Point:
    """The unit's records restricted to `ids` (None: all), each example once, in the order of `ids`."""
    recs = read_csv(csv_path)
    if ids is not None:
        wanted = set(ids)
        recs = [r for r in recs if r.example_id in wanted]
    unit = Unit(csv_path, arm, None, model, task.key, recs)
    order = {i: n for n, i in enumerate(ids if ids is not None else unit.ids)}
    ranked = sorted(unit.records, key=lambda r: order.get(r.example_id, len(order)))
    stability = stability_of(unit, task, N_BOOT, 0) if unit.repeats > 1 else None
    return Point(unit, {r.example_id: record_score(r) for r in ranked}, stability)


def point_metric(task: Any, *points: Point) -> Metric:
    """The metric for statistics over these points: the task's own, or the per-example-mean rule when any point
    holds repeats (consolidation.arms.metric_for)."""
    return metric_for(task, any(p.repeats > 1 for p in points))


def spread_cells(stabilities: Sequence[Stability | None], repeats: int) -> list[str]:
    """The SPREAD_COLUMNS of one curve point made of one or more cells (a tipping-point n pools its seeds):
    attempts per example; the run-to-run sd of the corpus score (pooled over the cells: the square root of the
    pooled within-cell variance of their per-repeat scores, stats.core.pooled_variance); the share of examples
    whose attempts all agree (mean over the cells). Empty without repeats."""
    known = [s for s in stabilities if s is not None]
    if repeats <= 1 or not known:
        return [str(max(repeats, 1)), "", ""]
    var, df = stats.pooled_variance([s.run_scores for s in known])
    agreement = [s.agreement for s in known if not math.isnan(s.agreement)]
    return [str(repeats), csv_float(math.sqrt(var) if df else None),
            csv_float(sum(agreement) / len(agreement) if agreement else None)]

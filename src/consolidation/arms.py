"""The statistics of one arm (a score with its interval) and of two arms compared on their shared examples."""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from src.consolidation.inputs import TaskInfo, Unit
from src.results.record import record_score
from src.stats.comparison import Metric, PairedDelta, paired_delta, score_interval
from src.stats.power import minimum_detectable_effect


@dataclass
class ArmStat:
    unit: Unit
    n: int
    score: float
    lo: float
    hi: float
    method: str
    n_correct: int


@dataclass
class Paired(PairedDelta):
    """b vs a on their shared example ids (the fields of PairedDelta), with the two arms and Holm's verdict."""

    a: Unit = None  # type: ignore[assignment]
    b: Unit = None  # type: ignore[assignment]
    holm_p: float = float("nan")
    holm_reject: bool = False
    family: str = "uncorrected"  # the family of tests its p is Holm-corrected over (named in every table)
    mde: float = float("nan")  # minimum detectable effect of its paired test at 80% power (stats.power)
    mde_basis: str = ""  # how the MDE was computed (test, n, observed discordance or sd of the differences)

    @property
    def significant(self) -> bool:
        return self.verdict in ("improved", "hurt")


def _seed(base: int, label: str) -> int:
    """A resampling seed per comparison, so results do not depend on the order comparisons are made in."""
    return (base * 1_000_003 + zlib.crc32(label.encode())) % (2**32)


def metric_for(task: TaskInfo | Any, repeated: bool) -> Metric:
    """The metric an arm's statistics use (`task`: anything with binary, aggregate, mean_aggregate). Without
    repeats, the task's own. With repeats (any arm compared evaluated k > 1 times) the mean of per-example mean
    scores, whose interval is a bootstrap over examples (each carrying its k attempts: a cluster bootstrap, so it
    reflects the variance between examples and between repeats) and whose paired test is a permutation test of
    per-example means. The demo-curve and tipping-point studies use the same rule (src.studies.attempts)."""
    if repeated:
        return Metric(False, lambda scores: sum(s.score for s in scores) / len(scores) if scores else
                      float("nan"), True)
    return Metric(bool(task.binary), task.aggregate, bool(task.mean_aggregate))


@dataclass(frozen=True)
class ArmStatistics:
    """Arm scores and paired comparisons under one resampling budget and seed."""

    tinfo: dict[str, TaskInfo]
    n_boot: int
    seed: int

    def _metric(self, task: str, *units: Unit) -> Metric:
        return metric_for(self.tinfo[task], any(u.repeats > 1 for u in units))

    def arm(self, u: Unit, ids: Collection[str] | None = None) -> ArmStat:
        """The arm's corpus score with its 95% interval, on all its examples or only on `ids` (a held-out half)."""
        recs = u.records if ids is None else [r for r in u.records if r.example_id in ids]
        scores = [record_score(r) for r in recs]
        seed = _seed(self.seed, f"arm|{u.arm}|{u.model}|{u.task}" + ("" if ids is None else f"|{len(recs)}"))
        iv = score_interval(scores, self._metric(u.task, u), n_boot=self.n_boot, seed=seed)
        return ArmStat(u, iv.n, iv.value, iv.lo, iv.hi, iv.method, sum(r.is_correct for r in recs))

    def paired(self, a: Unit, b: Unit, words: tuple[str, str] = ("lost", "gained"),
               ids: Collection[str] | None = None) -> Paired:
        """b vs a on shared ids (only those in `ids` when given), with the test's minimum detectable effect;
        `words` name the McNemar discordant pairs (a-only right, b-only right)."""
        shared = [e for e in a.ids if e in b.by_id and (ids is None or e in ids)]
        sa = [record_score(a.by_id[e]) for e in shared]
        sb = [record_score(b.by_id[e]) for e in shared]
        label = f"pair|{a.arm}|{a.model}|{b.arm}|{b.model}|{a.task}" + ("" if ids is None else f"|{len(shared)}")
        metric = self._metric(a.task, a, b)
        d = paired_delta(sa, sb, metric, n_boot=self.n_boot, seed=_seed(self.seed, label), words=words)
        mde = minimum_detectable_effect([s.score for s in sa], [s.score for s in sb], binary=metric.binary)
        basis = mde.basis
        if not metric.binary and not metric.mean_aggregate and mde.mde == mde.mde:
            basis += " (per-example scores; the corpus metric is not their mean: approximate)"
        return Paired(**dataclasses.asdict(d), a=a, b=b, mde=mde.mde, mde_basis=basis)

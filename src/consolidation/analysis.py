"""The analysis behind the golden files, computed once and rendered nowhere: everything the tables and report say."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from src.consolidation.arms import ArmStat, ArmStatistics, Paired
from src.consolidation.comparability import comparability
from src.consolidation.economics import BreakEven, UnitEconomics, break_even, economics
from src.consolidation.format import is_missing
from src.consolidation.inputs import ArmKey, Inputs, Unit
from src.consolidation.programs import DemoCounts, demo_counts
from src.consolidation.routing import MARGIN, RoutingPair, routing
from src.consolidation.stability import Stability, stability
from src.consolidation.scoreboard import Inversion, ScoreRow, scoreboard
from src.consolidation.studies import StudyFiles
from src.consolidation.variance import Variance, variance
from src.stats import core as stats


@dataclass
class Options:
    results_dir: Path
    out: Path
    strict: bool = False
    local_cost_per_hour: float | None = None
    n_boot: int = 2000
    seed: int = 0
    routing_margin: float = MARGIN  # non-inferiority margin of a routing policy vs always-API (0.01 = 1 point)


@dataclass
class Failures:
    """One arm's parse failures and backend errors (both score 0), apart from its accuracy."""

    n: int
    parse_failures: int
    errors: int
    top_error: tuple[str, int] | None  # the most common error's first line (80 characters) and its count


def failures(u: Unit) -> Failures:
    errs = [r.error for r in u.records if r.error]
    top = Counter(e.splitlines()[0][:80] for e in errs).most_common(1)
    return Failures(len(u.records), sum(r.parse_failure for r in u.records), len(errs), top[0] if top else None)


@dataclass
class Analysis:
    """Everything consolidation concludes from its inputs; the document and the golden CSVs are read from it."""

    inputs: Inputs
    options: Options
    warnings: list[str]  # comparability problems (each one line)
    arms: dict[ArmKey, ArmStat]  # in the order of the result files
    deltas: dict[tuple[str, str], Paired]  # optimized − baseline per (model, task), with Holm across all of them
    other_deltas: dict[ArmKey, Paired]  # every other arm − baseline (outside the Holm family)
    scoreboard: list[ScoreRow]
    inversions: list[Inversion]
    variance: Variance
    economics: dict[ArmKey, UnitEconomics]
    break_even: list[BreakEven]
    demo_counts: DemoCounts
    failures: dict[ArmKey, Failures]
    routing: list[RoutingPair]  # routing policies per (local arm, API arm) pair, from the recorded answers
    stability: dict[ArmKey, Stability]  # arms recorded with --repeats k > 1

    @property
    def notes(self) -> list[str]:
        return self.inputs.notes

    @property
    def models(self) -> list[str]:
        return self.inputs.models

    @property
    def tasks(self) -> list[str]:
        return self.inputs.tasks

    @property
    def studies(self) -> StudyFiles:
        return self.inputs.studies

    @property
    def smoke_units(self) -> list[Unit]:
        return [u for u in self.inputs.units if u.meta.smoke]

    @property
    def rehearsal_units(self) -> list[Unit]:
        """Units answered by rehearsal stand-ins (python -m src.rehearse), not by the models they are named after."""
        return [u for u in self.inputs.units if u.meta.run.rehearsal]

    def order(self, key: ArmKey) -> tuple[int, int, int]:
        """Sort key for (arm, model, task): task, then model, then arm, in the report's order."""
        return (self.tasks.index(key[2]), self.models.index(key[1]), self.inputs.arm_names.index(key[0]))


def analyse(inputs: Inputs, options: Options, warnings: list[str] | None = None) -> Analysis:
    """Arm statistics, paired deltas with Holm, scoreboard, variance, economics, break-even and demo counts.

    `warnings` are the comparability problems when the caller has already checked them (comparability())."""
    st = ArmStatistics(inputs.tinfo, options.n_boot, options.seed)
    arms = {(u.arm, u.model, u.task): st.arm(u) for u in inputs.units}
    deltas: dict[tuple[str, str], Paired] = {}
    for m in inputs.models:
        for t in inputs.tasks:
            a, b = inputs.unit.get(("baseline", m, t)), inputs.unit.get(("optimized", m, t))
            if a and b:
                deltas[(m, t)] = st.paired(a, b)
    keys = [k for k, d in deltas.items() if not is_missing(d.p)]
    adj, rej = stats.holm([deltas[k].p for k in keys])
    for k, ap, r in zip(keys, adj, rej):
        deltas[k].holm_p, deltas[k].holm_reject = ap, r
    for d in deltas.values():
        d.family = f"Holm across the {len(keys)} optimized − baseline deltas"
    other: dict[ArmKey, Paired] = {}
    for arm in inputs.extra_arms:
        for m in inputs.models:
            for t in inputs.tasks:
                a, b = inputs.unit.get(("baseline", m, t)), inputs.unit.get((arm, m, t))
                if a and b:
                    other[(arm, m, t)] = st.paired(a, b)
                    other[(arm, m, t)].family = "uncorrected (outside the Holm family of optimized − baseline)"
    rate = options.local_cost_per_hour
    econ = {k: economics(u, inputs.minfo[u.model], rate) for k, u in inputs.unit.items()}
    rows, inversions = scoreboard(inputs, arms, st)
    evaluated = {(m, t): inputs.program_for(m, t) for (a, m, t) in inputs.unit if a == "optimized"}
    return Analysis(inputs=inputs, options=options,
                    warnings=comparability(inputs) if warnings is None else warnings,
                    arms=arms, deltas=deltas, other_deltas=other, scoreboard=rows, inversions=inversions,
                    variance=variance(deltas, inputs.tasks), economics=econ,
                    break_even=break_even(inputs, arms, econ, rate),
                    demo_counts=demo_counts(inputs.programs, evaluated),
                    failures={k: failures(u) for k, u in inputs.unit.items()},
                    routing=routing(inputs, rate, options.n_boot, options.seed, options.routing_margin),
                    stability=stability(inputs, options.n_boot, options.seed))

"""The arbitrage scoreboard: per task, the best optimized local model against each API model, and rank inversions.

The best local model is chosen on one seeded half of the examples its candidates share (stats.selection) and its
comparison with each API arm is reported on the other half only: choosing the winner and testing it on the same
examples overstates it (the winner's curse). With a single candidate there is no choice to correct for, and all
its examples are used. The scoreboard's comparisons form one Holm family."""

from __future__ import annotations

from dataclasses import dataclass, field

from src.consolidation.arms import ArmStat, ArmStatistics, Paired
from src.consolidation.inputs import MAIN_ARMS, ArmKey, Inputs
from src.results.record import record_score
from src.stats import core as stats
from src.stats.selection import SELECTION_SEED, choose_best, selection_split

WORDS = ("API-only right", "local-only right")  # McNemar's discordant pairs, API arm first


@dataclass
class Choice:
    """How the best local model was chosen: among how many candidates, on which examples, tested on which."""

    n_candidates: int
    n_selection: int  # examples the choice was made on (0: a single candidate, nothing chosen)
    n_test: int  # examples the reported comparisons may use
    seed: int = SELECTION_SEED

    @property
    def text(self) -> str:
        if self.n_candidates <= 1:
            return "only candidate (all examples)"
        return (f"best of {self.n_candidates} on a seeded half (n={self.n_selection}, seed {self.seed}); "
                f"tested on the other half (n={self.n_test})")


@dataclass
class ScoreRow:
    """One task x API model (api_model None: the task has no API model), local − API paired per API arm."""

    task: str
    api_model: str | None
    local: ArmStat | None  # the best optimized local arm on the task, scored on the test examples
    api: dict[str, ArmStat | None] = field(default_factory=dict)  # the API model's arms: baseline, optimized
    vs: dict[str, Paired | None] = field(default_factory=dict)  # local − API per API arm (empty: no local arm)
    choice: Choice | None = None


@dataclass
class Inversion:
    """An optimized local arm scoring above an optimized API arm on the same task, with the paired comparison."""

    task: str
    local: ArmStat
    api: ArmStat
    cmp: Paired


def choose_local(inputs: Inputs, candidates: list[ArmStat], task: str) -> tuple[ArmStat | None, set[str] | None,
                                                                                   Choice | None]:
    """(the chosen arm, the ids its comparisons are reported on — None for all —, how it was chosen)."""
    if not candidates:
        return None, None, None
    if len(candidates) == 1:
        return candidates[0], None, Choice(1, 0, candidates[0].n)
    shared = [e for e in candidates[0].unit.ids if all(e in c.unit.by_id for c in candidates[1:])]
    sel, test = selection_split(shared)
    by_key = {c.unit.model: {e: record_score(c.unit.by_id[e]) for e in shared} for c in candidates}
    best_model = choose_best(by_key, sel, inputs.tinfo[task].aggregate)
    if best_model is None:  # no shared examples to choose on: fall back to the point estimate, said as such
        return max(candidates, key=lambda a: a.score), None, Choice(len(candidates), 0, 0)
    best = next(c for c in candidates if c.unit.model == best_model)
    return best, set(test), Choice(len(candidates), len(sel), len(test))


def scoreboard(inputs: Inputs, arms: dict[ArmKey, ArmStat],
               stats_: ArmStatistics) -> tuple[list[ScoreRow], list[Inversion]]:
    """Per task, the best optimized local arm (chosen on a held-out half) against each API model's baseline and
    optimized arms on the other half, Holm-corrected across the scoreboard; and every optimized local arm that
    scores above an optimized API arm (all examples, each comparison uncorrected)."""
    rows, inversions = [], []
    for t in inputs.tasks:
        local_opt = [arms[k] for k in arms if k[0] == "optimized" and k[2] == t and inputs.minfo[k[1]].kind == "local"]
        api_models = [m for m in inputs.models if inputs.minfo[m].kind == "api"
                      and any((a, m, t) in arms for a in MAIN_ARMS)]
        chosen, test_ids, choice = choose_local(inputs, local_opt, t)
        best = chosen if chosen is None or test_ids is None else stats_.arm(chosen.unit, test_ids)
        for am in api_models:
            row = ScoreRow(t, am, best, {a: arms.get((a, am, t)) for a in MAIN_ARMS}, choice=choice)
            if best:
                refs = {a: inputs.unit.get((a, am, t)) for a in MAIN_ARMS}
                row.vs = {a: stats_.paired(ref, best.unit, WORDS, ids=test_ids) if ref else None
                          for a, ref in refs.items()}
            rows.append(row)
        for lo_arm in local_opt:
            for am in api_models:
                ref = arms.get(("optimized", am, t))
                if ref and lo_arm.score > ref.score:
                    inversions.append(Inversion(t, lo_arm, ref, stats_.paired(ref.unit, lo_arm.unit, WORDS)))
        if not api_models:
            rows.append(ScoreRow(t, None, best, choice=choice))
    family = [d for r in rows for d in r.vs.values() if d is not None and d.p == d.p]
    adjusted, reject = stats.holm([d.p for d in family])
    for d, ap, rj in zip(family, adjusted, reject):
        d.holm_p, d.holm_reject = ap, rj
        d.family = f"Holm across the {len(family)} scoreboard comparisons"
    return rows, inversions

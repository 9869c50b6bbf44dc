"""The arbitrage scoreboard: per task, the best optimized local model against each API model, and rank inversions."""

from __future__ import annotations

from dataclasses import dataclass, field

from src.consolidation.arms import ArmStat, ArmStatistics, Paired
from src.consolidation.inputs import MAIN_ARMS, ArmKey, Inputs

WORDS = ("API-only right", "local-only right")  # McNemar's discordant pairs, API arm first


@dataclass
class ScoreRow:
    """One task x API model (api_model None: the task has no API model), local − API paired per API arm."""

    task: str
    api_model: str | None
    local: ArmStat | None  # the best optimized local arm on the task
    api: dict[str, ArmStat | None] = field(default_factory=dict)  # the API model's arms: baseline, optimized
    vs: dict[str, Paired | None] = field(default_factory=dict)  # local − API per API arm (empty: no local arm)


@dataclass
class Inversion:
    """An optimized local arm scoring above an optimized API arm on the same task, with the paired comparison."""

    task: str
    local: ArmStat
    api: ArmStat
    cmp: Paired


def scoreboard(inputs: Inputs, arms: dict[ArmKey, ArmStat],
               stats: ArmStatistics) -> tuple[list[ScoreRow], list[Inversion]]:
    """Per task, the best optimized local arm (by score) against each API model's baseline and optimized arms, and
    every optimized local arm that scores above an optimized API arm."""
    rows, inversions = [], []
    for t in inputs.tasks:
        local_opt = [arms[k] for k in arms if k[0] == "optimized" and k[2] == t and inputs.minfo[k[1]].kind == "local"]
        api_models = [m for m in inputs.models if inputs.minfo[m].kind == "api"
                      and any((a, m, t) in arms for a in MAIN_ARMS)]
        best = max(local_opt, key=lambda a: a.score) if local_opt else None
        for am in api_models:
            row = ScoreRow(t, am, best, {a: arms.get((a, am, t)) for a in MAIN_ARMS})
            if best:
                refs = {a: inputs.unit.get((a, am, t)) for a in MAIN_ARMS}
                row.vs = {a: stats.paired(ref, best.unit, WORDS) if ref else None for a, ref in refs.items()}
            rows.append(row)
        for lo_arm in local_opt:
            for am in api_models:
                ref = arms.get(("optimized", am, t))
                if ref and lo_arm.score > ref.score:
                    inversions.append(Inversion(t, lo_arm, ref, stats.paired(ref.unit, lo_arm.unit, WORDS)))
        if not api_models:
            rows.append(ScoreRow(t, None, best))
    return rows, inversions

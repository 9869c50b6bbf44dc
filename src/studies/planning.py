"""Study planning: how many eval examples per task a target effect needs, from the results measured so far (or a
stated prior), and what that n costs in LM calls and dollars. The numbers come from stats.power; this module
decides what each (model, task) is assumed to look like and where that assumption came from.

Assumptions, best first, per (student model, task):
1. measured pairs: the baseline and the optimized arm are both on disk -> their observed discordance (binary
   metrics) or standard deviation of the per-example differences (continuous metrics);
2. a measured baseline only -> binary: the discordance two arms at accuracies p and p + effect would have if they
   erred independently (stats.power.discordance_prior; an upper bound, so n is conservative); continuous: sd of
   the differences = sqrt(2) * sd of the baseline scores (independent arms, again conservative);
3. the stated prior (--prior-baseline for binary metrics, --prior-sd for continuous ones), labelled as such.
A task's n is the largest any of its students needs: every model of a task is evaluated on the same examples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.results.files import read_csv
from src.results.naming import arm_for_optimizer, prefix_for, result_csv
from src.results.record import Record, record_score
from src.stats import power as pw

if TYPE_CHECKING:
    from src.registry import ModelSpec
    from src.tasks.base import Task

CHARS_PER_TOKEN = 4  # for token estimates when nothing was measured (the usual English average)
PROMPT_OVERHEAD_TOKENS = 150  # instructions, field markers and the adapter's format rules around the inputs


@dataclass(frozen=True)
class Assumption:
    """What one (model, task) is assumed to look like, and why."""

    model: str
    binary: bool
    spread: float  # discordance (binary) or sd of the per-example differences (continuous)
    baseline: float | None  # the baseline score it rests on, when there is one
    source: str  # "measured pairs (n=50)", "measured baseline (n=50), independent errors", "prior ..."


@dataclass
class TaskPlan:
    """One task's answer: the n the effect needs and what the study's current n can see."""

    task: str
    binary: bool
    effect: float
    assumptions: list[Assumption] = field(default_factory=list)
    n_needed: int | None = None  # None: not reachable within the limits, or no assumption
    worst: Assumption | None = None
    limit: int | None = None
    mde_at_limit: float | None = None
    n_available: int | None = None


def _scores(path: Path) -> dict[str, Record]:
    return {r.example_id: r for r in read_csv(path)} if path.is_file() else {}


def assumption_for(results_dir: Path, spec: ModelSpec, task: Task, optimizer: str, effect: float,
                   prior_baseline: float, prior_sd: float) -> Assumption:
    """The best-founded assumption for one (model, task): measured pairs, a measured baseline, or the prior."""
    prefix = prefix_for(spec)
    base = _scores(result_csv(results_dir, prefix, "baseline", task.key, spec.key))
    opt = _scores(result_csv(results_dir, prefix, arm_for_optimizer(optimizer), task.key, spec.key))
    base_values = [record_score(r).score for r in base.values() if not r.error]
    shared = [i for i in base if i in opt and not base[i].error and not opt[i].error]
    if len(shared) >= 10:
        a = [record_score(base[i]).score for i in shared]
        b = [record_score(opt[i]).score for i in shared]
        if task.binary:
            psi = sum(1 for x, y in zip(a, b) if (x >= 0.5) != (y >= 0.5)) / len(shared)
            if psi > 0:
                return Assumption(spec.key, True, psi, sum(a) / len(a),
                                  f"measured baseline and {optimizer} pairs (n={len(shared)})")
        else:
            mean = sum(y - x for x, y in zip(a, b)) / len(a)
            sd = math.sqrt(sum((y - x - mean) ** 2 for x, y in zip(a, b)) / (len(a) - 1))
            if sd > 0:
                return Assumption(spec.key, False, sd, sum(a) / len(a),
                                  f"measured baseline and {optimizer} pairs (n={len(shared)})")
    if len(base_values) >= 10:
        p = sum(base_values) / len(base_values)
        if task.binary:
            return Assumption(spec.key, True, pw.discordance_prior(p, effect), p,
                              f"measured baseline (n={len(base_values)}), errors assumed independent")
        sd = math.sqrt(sum((x - p) ** 2 for x in base_values) / (len(base_values) - 1))
        if sd > 0:
            return Assumption(spec.key, False, math.sqrt(2) * sd, p,
                              f"measured baseline (n={len(base_values)}), arms assumed independent")
    if task.binary:
        return Assumption(spec.key, True, pw.discordance_prior(prior_baseline, effect), prior_baseline,
                          f"prior: baseline accuracy {prior_baseline:.2f}, errors independent")
    return Assumption(spec.key, False, prior_sd, None, f"prior: sd of differences {prior_sd:.2f}")


def n_for(assumption: Assumption, effect: float, power: float, alpha: float) -> int | None:
    if assumption.binary:
        return pw.n_binary(effect, assumption.spread, power, alpha)
    return pw.n_continuous(effect, assumption.spread, power, alpha)


def mde_for(assumption: Assumption, n: int, power: float, alpha: float) -> float:
    if assumption.binary:
        return pw.mde_binary(n, assumption.spread, power, alpha)
    return pw.mde_continuous(n, assumption.spread, power, alpha)


def plan_task(task: Task, students: list[ModelSpec], results_dir: Path, optimizer: str, effect: float, power: float,
              alpha: float, prior_baseline: float, prior_sd: float, limit: int | None,
              n_available: int | None) -> TaskPlan:
    """The n a task needs for `effect` at `power` (the worst case over its students) and the MDE at its limit."""
    out = TaskPlan(task.key, bool(task.binary), effect, limit=limit, n_available=n_available)
    out.assumptions = [assumption_for(results_dir, s, task, optimizer, effect, prior_baseline, prior_sd)
                       for s in students]
    needs = [(n_for(a, effect, power, alpha), a) for a in out.assumptions]
    if needs:
        unreachable = [a for n, a in needs if n is None]
        if unreachable:
            out.n_needed, out.worst = None, unreachable[0]
        else:
            out.n_needed, out.worst = max(needs, key=lambda na: na[0])  # type: ignore[arg-type, return-value]
        if limit and out.worst is not None:
            out.mde_at_limit = max(mde_for(a, limit, power, alpha) for a in out.assumptions)
    return out


@dataclass(frozen=True)
class TokensPerCall:
    input: float
    output: float
    source: str


def tokens_per_call(results_dir: Path, spec: ModelSpec, task: Task, examples: list[Any],
                    chain_of_thought: bool) -> TokensPerCall:
    """Mean tokens per LM call: measured on this model's baseline of the task, else on any measured model's, else
    estimated from the examples' text (inputs / 4 + prompt overhead; output = gold text / 4 + reasoning)."""
    own = result_csv(results_dir, prefix_for(spec), "baseline", task.key, spec.key)
    candidates = [own] + sorted(p for p in results_dir.glob(f"*_baseline_{task.key}_*.csv") if p != own)
    for path in candidates:
        recs = [r for r in _scores(path).values() if r.lm_calls > 0 and r.input_tokens > 0]
        if recs:
            calls = sum(r.lm_calls for r in recs)
            who = "this model" if path == own else f"another model's run ({path.name})"
            return TokensPerCall(sum(r.input_tokens for r in recs) / calls, sum(r.output_tokens for r in recs) / calls,
                                 f"measured on {who}")
    if not examples:
        return TokensPerCall(PROMPT_OVERHEAD_TOKENS, 50, "guessed (no examples loaded)")
    text_in = sum(len(" ".join(str(v) for v in ex.inputs.values())) for ex in examples) / len(examples)
    text_out = sum(len(" ".join(str(v) for v in ex.labels.values())) for ex in examples) / len(examples)
    reasoning = 200 if chain_of_thought else 0
    return TokensPerCall(text_in / CHARS_PER_TOKEN + PROMPT_OVERHEAD_TOKENS, text_out / CHARS_PER_TOKEN + 20
                         + reasoning, "estimated from the examples' text")

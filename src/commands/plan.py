"""python -m src.plan: before spending money, how many eval examples per task a target effect needs, the LM calls
that implies for a study file, and what they cost at the registry's prices.

    python -m src.plan [--preset full | --config FILE] [--effect 5] [--power 0.8] [--alpha 0.05]
                       [--prior-baseline 0.5] [--prior-sd 0.3] [--results-dir DIR] [--data MODE] [--tasks a,b]

The effect is in points (5 = a 5-point lift). Baselines measured so far under --results-dir are used where they
exist (see src.studies.planning for the assumptions, in order); otherwise the stated priors, labelled as such.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path

from src.commands import common
from src.commands.experiment import load_experiment
from src.errors import UserError
from src.evaluation.matrix import DataCache
from src.optimization.arms import get_arm
from src.optimization.presets import preset as get_preset
from src.registry import load_config
from src.registry import experiments as study_files
from src.stats import power as pw
from src.studies.planning import TaskPlan, plan_task, tokens_per_call
from src.tasks import get_task, resolve_task_keys
from src.tasks.sources import DATA_MODES


def _fraction(value: str, name: str, low: float, high: float) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name} must be a number, got '{value}'") from None
    if not (math.isfinite(x) and low < x < high):
        raise argparse.ArgumentTypeError(f"{name} must be between {low:g} and {high:g} (exclusive), got {value}")
    return x


def _pts(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "?"
    return "none" if math.isinf(x) else f"{100 * x:.1f}"


def main() -> int:
    p = common.Parser(prog="python -m src.plan", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="full", help="a study file experiments/<name>.yaml (default full)")
    p.add_argument("--config", default=None, help="a study file (YAML) instead of a preset")
    p.add_argument("--effect", type=lambda v: _fraction(v, "--effect", 0, 100), default=5.0,
                   help="the smallest lift worth detecting, in points (default 5)")
    p.add_argument("--power", type=lambda v: _fraction(v, "--power", 0, 1), default=pw.POWER)
    p.add_argument("--alpha", type=lambda v: _fraction(v, "--alpha", 0, 1), default=pw.ALPHA)
    p.add_argument("--prior-baseline", type=lambda v: _fraction(v, "--prior-baseline", 0, 1), default=0.5,
                   help="binary metrics without a measured baseline: its assumed accuracy (default 0.5, the most "
                        "demanding)")
    p.add_argument("--prior-sd", type=lambda v: _fraction(v, "--prior-sd", 0, 2), default=0.3,
                   help="continuous metrics without a measured baseline: assumed sd of the per-example differences")
    p.add_argument("--results-dir", default=None, help="where measured results are read (default: ./results)")
    p.add_argument("--data", default=None, choices=DATA_MODES, help="the data whose eval sizes cap n (default: "
                   "the study file's)")
    p.add_argument("--tasks", default=None, help="a subset of the study's tasks")
    args = p.parse_args()
    config = load_config()
    path = Path(args.config) if args.config else study_files.preset_file(args.preset)
    exp = load_experiment(path, config)
    keys = resolve_task_keys(args.tasks or exp.tasks, config)
    results_dir = Path(args.results_dir) if args.results_dir else config.results_dir
    effect = args.effect / 100
    students = [config.model(k) for k in exp.students]
    references = [config.model(k) for k in exp.references]
    if not students and not references:
        raise UserError(f"{path}: the study has no students and no references to plan for")
    budget = get_preset(exp.preset)
    arm = get_arm(exp.optimizer)
    n_seeds = len(exp.seeds) if arm.seeded else 1
    data = DataCache(config, args.data or exp.data)
    print(f"plan for {exp.name} ({path}): effect {args.effect:g} points, power {args.power:.0%}, alpha {args.alpha:g}; "
          f"results read from {results_dir}; eval sizes from {data.source.describe()}")

    plans: list[TaskPlan] = []
    calls: dict[str, float] = defaultdict(float)
    cost: dict[str, float] = defaultdict(float)
    token_notes: dict[str, list[str]] = defaultdict(list)  # "task: in/out (source)" -> models
    for key in keys:
        task = get_task(key, config)
        try:
            td = data.get(task)
        except UserError as exc:
            print(f"  {key}: data not available ({exc}); eval size unknown", file=sys.stderr)
            td = None
        plan = plan_task(task, students or references, results_dir, exp.optimizer, effect, args.power, args.alpha,
                         args.prior_baseline, args.prior_sd, exp.limit, len(td.eval) if td else None)
        plans.append(plan)
        n = plan.n_needed
        if n is not None and plan.n_available is not None:
            n = min(n, plan.n_available)
        if n is None:
            continue
        dev = exp.dev_size or budget.dev_size
        n_train = min(exp.train_size or budget.train_size, max(0, len(td.train) - dev)) if td else budget.train_size
        for spec in students + references:
            per_call = tokens_per_call(results_dir, spec, task, td.eval[:200] if td else [], task.chain_of_thought)
            model_calls = n * (2 if spec in students else 1)  # baseline (+ optimized eval for students)
            teacher_calls = 0
            if spec in students and td is not None:
                # the optimizer's own projection, with the sizes run_optimization would use
                proj = arm.projected(task, budget, n_train, dev, n_seeds)
                model_calls += proj.student
                teacher_calls = proj.teacher
            teacher = config.model(exp.teacher) if exp.teacher else spec
            for who, count in ((spec, model_calls), (teacher, teacher_calls)):
                if count:
                    calls[who.key] += count
                    cost[who.key] += count * (per_call.input * who.price_in + per_call.output * who.price_out) / 1e6
            if any(m.price_in or m.price_out for m in (spec, teacher)):
                token_notes[f"{key}: {per_call.input:.0f} in / {per_call.output:.0f} out tokens per call "
                            f"({per_call.source})"].append(spec.key)

    print(f"\n{'task':<16}{'metric':<12}{'n needed':>9}{'eval size':>10}{'limit':>7}{'MDE at limit':>13}  basis "
          f"(the model needing the most)")
    for plan in plans:
        kind = "binary" if plan.binary else "continuous"
        need = str(plan.n_needed) if plan.n_needed is not None else "unreachable"
        if plan.n_needed and plan.n_available is not None and plan.n_needed > plan.n_available:
            need += "!"
        basis = "-"
        if plan.worst:
            spread = f"discordance {plan.worst.spread:.2f}" if plan.binary else \
                f"sd of differences {plan.worst.spread:.2f}"
            basis = f"{plan.worst.model}: {plan.worst.source}" + ("" if spread in plan.worst.source else f"; {spread}")
        print(f"{plan.task:<16}{kind:<12}{need:>9}{plan.n_available if plan.n_available is not None else '?':>10}"
              f"{plan.limit or 'all':>7}{_pts(plan.mde_at_limit):>13}  {basis}")
    short = [pl.task for pl in plans if pl.n_needed and pl.n_available is not None and pl.n_needed > pl.n_available]
    if short:
        print(f"! more examples than the eval split holds: {', '.join(short)} (calls below use the whole split)")
    print("MDE at limit = the smallest lift (points) the study file's limit detects with the same power; 'none' = "
          "no lift its n can detect")
    print("\nLM calls and cost at the registry's prices (baselines + optimized eval at the needed n, optimization as "
          f"{exp.optimizer}'s own projection for preset {exp.preset}, {n_seeds} seed(s); upper bounds):")
    for key in sorted(calls):
        spec = config.model(key)
        price = f"${cost[key]:,.2f}" if spec.price_in or spec.price_out else "$0 (local)"
        print(f"  {key:<22}{calls[key]:>12,.0f} calls  {price}")
    print(f"  {'total':<22}{sum(calls.values()):>12,.0f} calls  ${sum(cost.values()):,.2f}")
    everyone = {m.key for m in students + references}
    for note, models in token_notes.items():
        who = "" if set(models) >= {m.key for m in students + references if m.price_in or m.price_out} or \
            set(models) == everyone else f" [{', '.join(models)}]"
        print(f"  tokens {note}{who}")
    return 0

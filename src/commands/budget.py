"""--max-cost before a run starts: the projected spend of the units still to do (calls x tokens x registry prices,
the dry-run projection), and a one-line refusal when it is over the cap. While the run goes, the cap itself is kept
per request by the models' sessions (src.backends.metering.SpendCap).

Tokens per call are measured on earlier results where they exist, else estimated from the examples' text (the
same estimate `python -m src.plan` uses: src.studies.planning.tokens_per_call). Only priced models count (a local
model's $ is computed at consolidation, from wall time)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.errors import UserError
from src.results.journal import Journal
from src.results.naming import arm_for_optimizer, journal_path, prefix_for, result_csv
from src.results.record import record_key
from src.studies.planning import tokens_per_call

if TYPE_CHECKING:
    from src.evaluation.matrix import PlannedUnit
    from src.registry import ModelSpec

SPEND_LEDGER_ENV = "IA_SPEND_LEDGER"  # set by ./run_experiment.sh: one running spend across a study's stages


def add_flag(group: Any) -> None:
    group.add_argument("--max-cost", type=_usd, default=None, metavar="USD",
                       help="spending cap in USD at the registry's prices: refuse to start if the projected spend "
                            "is over it; while running, no API request starts once it could take the spend over "
                            "it (stopped units resume when rerun)")


def _usd(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an amount in USD, got '{value}'") from None
    if not (x >= 0 and x != float("inf")):
        raise argparse.ArgumentTypeError(f"expected an amount in USD >= 0, got {value}")
    return x


def session_options(args: argparse.Namespace) -> dict[str, Any]:
    """The SessionOptions fields of --max-cost (and a study's running spend, when a stage of one)."""
    cap = getattr(args, "max_cost", None)
    ledger = os.environ.get(SPEND_LEDGER_ENV)
    return {"max_cost": cap, "spend_ledger": Path(ledger) if ledger and cap is not None else None}


def already_spent() -> float:
    """What earlier stages of this study spent (0 outside a study)."""
    ledger = os.environ.get(SPEND_LEDGER_ENV)
    if not ledger:
        return 0.0
    from src.backends.metering import SpendCap

    return SpendCap(0.0, Path(ledger)).spent


@dataclass(frozen=True)
class Line:
    model: str
    what: str
    calls: int
    usd: float
    basis: str


def attempts_to_do(csv: Path, examples: list[Any], repeats: int, force: bool) -> list[tuple[Any, int]]:
    """The (example, repeat) attempts of an evaluation unit still to run: every one under --force, else those its
    journal holds no successful record of (what a resumed unit will request)."""
    todo = [(ex, r) for ex in examples for r in range(repeats)]
    if force:
        return todo
    journal = Journal(journal_path(csv))
    journal.load()
    done = journal.records
    return [(ex, r) for ex, r in todo if record_key(ex.id, r) not in done or done[record_key(ex.id, r)].error]


def eval_lines(planned: list[PlannedUnit], results_dir: Path, force: bool) -> list[Line]:
    """Each priced unit's projected spend on the examples it has still to do."""
    out = []
    for u in planned:
        spec = u.spec
        if not (spec.price_in or spec.price_out):
            continue
        todo = attempts_to_do(u.csv, u.examples, u.repeats, force)
        calls = len(todo) * u.calls_per_example
        per = tokens_per_call(results_dir, spec, u.task, [ex for ex, _ in todo[:200]], u.task.chain_of_thought)
        out.append(Line(spec.key, f"{u.task.key} ({len(todo)} {'attempts' if u.repeats > 1 else 'examples'} to do)",
                        calls,
                        calls * spec.cost_usd(per.input, per.output), per.source))
    return out


def priced_lines(spec: ModelSpec, what: str, calls: int, per_in: float, per_out: float, basis: str) -> list[Line]:
    if not (spec.price_in or spec.price_out) or not calls:
        return []
    return [Line(spec.key, what, calls, calls * spec.cost_usd(per_in, per_out), basis)]


def check(cap: float | None, lines: list[Line], *, dry_run: bool = False, out: Callable[[str], None] = print) -> None:
    """Print the projected spend; refuse with one line (before any call) when it is over the cap."""
    total = sum(x.usd for x in lines)
    if cap is None and not lines:
        return
    spent = already_spent()
    for x in lines:
        out(f"  projected spend {x.model} x {x.what}: {x.calls} calls, ${x.usd:.4f} (tokens {x.basis})")
    out(f"projected spend: ${total:.4f} at the registry's prices" + (f" + ${spent:.4f} already spent by this study"
                                                                       if spent else "")
        + (f"; cap --max-cost ${cap:g}" if cap is not None else ""))
    if cap is not None and total + spent > cap and dry_run:
        out(f"over the cap: without --dry-run this run would be refused (projected ${total + spent:.4f} > "
            f"--max-cost ${cap:g})")
    if cap is not None and total + spent > cap and not dry_run:
        raise UserError(f"--max-cost ${cap:g}: the projected spend is ${total + spent:.4f} "
                        f"({len(lines)} priced unit(s)" + (f", ${spent:.4f} already spent" if spent else "")
                        + "); nothing was run — raise --max-cost, lower --limit or choose fewer models/tasks")


def matrix_check(args: argparse.Namespace, results_dir: Path) -> Callable[[list[PlannedUnit]], None]:
    """The hook evaluate_matrix calls with its planned units, before any preflight or call."""
    def run(planned: list[PlannedUnit]) -> None:
        check(getattr(args, "max_cost", None), eval_lines(planned, results_dir, bool(getattr(args, "force", False))),
              dry_run=bool(getattr(args, "dry_run", False)))
    return run


def optimization_lines(results_dir: Path, student: ModelSpec, teacher: ModelSpec, task: Any, train: list[Any],
                       student_calls: int, teacher_calls: int) -> list[Line]:
    """One optimization unit's projected spend: the arm's own call projection (upper bounds) for student and
    teacher, at each model's tokens per call (measured on its baseline, else estimated from the train examples)."""
    out: list[Line] = []
    for spec, calls, role in ((student, student_calls, "student"), (teacher, teacher_calls, "teacher")):
        if calls and (spec.price_in or spec.price_out):
            per = tokens_per_call(results_dir, spec, task, train[:200], task.chain_of_thought)
            out += priced_lines(spec, f"optimizing {task.key} ({role})", calls, per.input, per.output, per.source)
    return out


def demo_curve_lines(results_dir: Path, spec: ModelSpec, task: Any, examples: list[Any], conditions: int,
                     repeats: int = 1) -> list[Line]:
    """A demo curve's projected spend: every condition (baseline, n = 0..k demos) on every example, `repeats`
    attempts each. An upper bound on calls (conditions already done are not subtracted); tokens per call are the
    baseline's, so the demos' longer prompts are under-counted - the running cap (SpendCap) is what bounds them."""
    per = tokens_per_call(results_dir, spec, task, examples[:200], task.chain_of_thought)
    times = f" x {repeats} attempts" if repeats > 1 else ""
    return priced_lines(spec, f"{task.key} demo curve ({conditions} conditions x {len(examples)} examples{times})",
                        conditions * len(examples) * repeats, per.input, per.output, per.source)


def tipping_lines(results_dir: Path, student: ModelSpec, teacher: ModelSpec, task: Any, train: list[Any],
                  n_dev: int, examples: list[Any], cells: int, preset: Any, repeats: int = 1) -> list[Line]:
    """A tipping-point study's projected spend for one (model, task): each optimized cell is one seed of random
    search (the bootstrap_rs arm's projection) plus its evaluation (`repeats` attempts per example); the n = 0
    cell is the evaluation only."""
    from src.optimization.arms import get_arm

    proj = get_arm("bootstrap_rs").projected(task, preset, len(train), n_dev, 1)
    out = optimization_lines(results_dir, student, teacher, task, train, cells * proj.student, cells * proj.teacher)
    per = tokens_per_call(results_dir, student, task, examples[:200], task.chain_of_thought)
    times = f" x {repeats} attempts" if repeats > 1 else ""
    out += priced_lines(student, f"{task.key} tipping-point evaluations ({cells + 1} cells x {len(examples)} "
                        f"examples{times})", (cells + 1) * len(examples) * repeats, per.input, per.output, per.source)
    return out


def study_lines(exp: Any, config: Any, results_dir: Path, data_mode: str, limit: int | None,
                ref_limit: int | None, stages: list[str], *, repeats: int | None = None,
                force: bool = False) -> list[Line]:
    """A study's projected spend, stage by stage as ./run_experiment.sh would run them: baselines of students and
    references and the optimized evaluation of each student (every attempt of `repeats` — --repeats, else the
    study's — still to do: what their journals already hold is not spent again unless `force`), the optimizer's
    projection for each student, and the later studies the study configures (each student's demo curve at the most
    demos its program can hold; the tipping point's cells)."""
    from src.evaluation.matrix import DataCache
    from src.optimization.arms import get_arm
    from src.optimization.presets import preset as get_preset
    from src.tasks import get_task, resolve_task_keys

    data = DataCache(config, data_mode, announce=False)  # a projection: the run proper says it
    budget = get_preset(exp.preset)
    arm = get_arm(exp.optimizer)
    n_seeds = len(exp.seeds) if arm.seeded else 1
    reps = repeats or exp.repeats
    students = [config.model(k) for k in exp.students]
    references = [config.model(k) for k in exp.references]
    teacher = config.model(exp.teacher) if exp.teacher else None
    out: list[Line] = []
    for key in resolve_task_keys(exp.tasks, config):
        task = get_task(key, config)
        try:
            td = data.get(task)
        except UserError:
            continue  # the stage itself reports data it cannot load
        per_example = max(1, len(task.program().predictors()))
        runs: list[tuple[ModelSpec, str, str, int | None]] = []
        if "baseline" in stages:
            runs += [(s, "baseline", "baseline", limit) for s in students] + [(s, "baseline", "baseline",
                                                                               ref_limit or limit) for s in references]
        if "eval" in stages:
            runs += [(s, "optimized eval", arm_for_optimizer(exp.optimizer), limit) for s in students]
        for spec, what, arm_name, lim in runs:
            if not (spec.price_in or spec.price_out):
                continue
            examples = td.eval_subset(lim or None)
            csv = result_csv(results_dir, prefix_for(spec), arm_name, key, spec.key)
            todo = attempts_to_do(csv, examples, reps, force)
            per = tokens_per_call(results_dir, spec, task, examples[:200], task.chain_of_thought)
            count = f"{len(todo)} attempts" if reps > 1 else f"{len(todo)} examples"
            out += priced_lines(spec, f"{key} {what} ({count} to do)", len(todo) * per_example,
                                per.input, per.output, per.source)
        if "optimize" in stages:
            dev = exp.dev_size or budget.dev_size
            n_train = min(exp.train_size or budget.train_size, max(0, len(td.train) - dev))
            for spec in students:
                proj = arm.projected(task, budget, n_train, dev, n_seeds)
                out += optimization_lines(results_dir, spec, teacher or spec, task, td.train, proj.student,
                                          proj.teacher)
        if "demo_curves" in stages and exp.demo_curves is not None:  # every student's pair, k at its most
            settings = {"mipro_v2": budget.mipro, "bootstrap_rs": budget.bootstrap_rs}.get(exp.optimizer, {})
            k = exp.demo_curves.max_demos if exp.demo_curves.max_demos is not None else \
                max(int(settings.get("max_bootstrapped_demos", 0)), int(settings.get("max_labeled_demos", 0)))
            for spec in students:
                out += demo_curve_lines(results_dir, spec, task, td.eval_subset(limit or None), k + 2,
                                        repeats=reps)
    if "tipping_point" in stages and exp.tipping_point is not None:
        out += _tipping_study_lines(exp, config, results_dir, data, limit, reps)
    return out


def _tipping_study_lines(exp: Any, config: Any, results_dir: Path, data: Any, limit: int | None,
                         repeats: int) -> list[Line]:
    """The study file's tipping point, as the tipping-point command projects it."""
    from src.optimization.presets import preset as get_preset
    from src.tasks import get_task, resolve_task_keys
    from src.tasks.splits import optimization_sets

    tp = exp.tipping_point
    budget = get_preset(tp.preset)
    cells = len([n for n in tp.n if n > 0]) * len(tp.seeds)
    out: list[Line] = []
    for key in resolve_task_keys(tp.tasks or exp.tasks, config):
        task = get_task(key, config)
        try:
            td = data.get(task)
            train, dev = optimization_sets(task, td, budget.train_size, budget.dev_size)
        except UserError:
            continue  # the cells report it
        for m in tp.models:
            out += tipping_lines(results_dir, config.model(m), config.model(tp.teacher or m), task, train, len(dev),
                                 td.eval_subset(limit or None), cells, budget, repeats=repeats)
    return out


def new_ledger(results_dir: Path) -> Path:
    """A fresh running-spend file for one study run (under the results folder, so the stages all see it)."""
    import time

    folder = results_dir / ".spend"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"study-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.json"
    path.write_text('{"spent_usd": 0.0}', encoding="utf-8")
    return path

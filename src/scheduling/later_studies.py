"""The later studies as units of a study's graph: a demo-curve unit per (student, task), a tipping-point unit per
(model, task, n, seed) cell - the granularity of the tipping point's checkpoints - and the tipping-point analysis.

Each unit calls what the separate commands call (python -m src.demo_curve_eval: select_pairs, curve_pair,
merge_write; python -m src.tipping_point.runner: optimization_sets, run_cell, analyze), with sessions opened under
the same settings, on the same files under the same checkpoint rule (src.results.checkpoint, names from
src.results.naming), so a study that includes them leaves the files those commands leave when run after the other
stages. Their LM requests take the same per-endpoint budgets as every other unit's. Under the Ray executor they run
on the driver, as optimization does (their requests are sent from there).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.backends.adapters import build_adapter, choose_adapter
from src.errors import UserError
from src.evaluation.engine import example_calls
from src.optimization.arms import get_arm
from src.optimization.presets import Preset, preset
from src.results.naming import (demo_curve_arm, demo_curves_dir, prefix_for, result_csv, tipping_arm, tipping_dir)
from src.scheduling.graph import Unit, UnitGraph, UnitResult
from src.scheduling.settings import StudySettings, spread
from src.studies.demo_curves import CURVE_COLUMNS, DECOMPOSITION_COLUMNS, curve_pair, merge_write, select_pairs
from src.studies.tipping_point.analyzer import analyze
from src.studies.tipping_point.runner import run_cell
from src.tasks.splits import optimization_sets

if TYPE_CHECKING:
    from src.backends.session import Sessions
    from src.evaluation.matrix import DataCache
    from src.tasks.base import Task

# The curve files accumulate pairs (merge_write keeps other pairs' rows): one unit merges its rows at a time, or two
# pairs finishing together would each write the file without the other's rows.
_CURVE_FILES = threading.Lock()


def _eval_calls(s: StudySettings, sessions: Sessions, model: str, task: Task, program: Any, n_examples: int) -> int:
    """The most LM requests evaluating `program` on n examples can make (every attempt of --repeats)."""
    spec = sessions.spec(model)
    adapter = build_adapter(choose_adapter(spec, s.adapter), spec)  # no LM is made (nor a server started) here
    return n_examples * example_calls(program, adapter) * s.repeats


def _most_demos(budget: Preset, optimizer: str) -> int:
    """The most demos a predictor of an `optimizer` program can hold under `budget` (a dry run's bound on k)."""
    settings = {"mipro_v2": budget.mipro, "bootstrap_rs": budget.bootstrap_rs}.get(optimizer, {})
    return max(int(settings.get("max_bootstrapped_demos", 0)), int(settings.get("max_labeled_demos", 0)))


def _say(line: str) -> None:
    print(line + "\n", end="", file=sys.stderr, flush=True)


def demo_curve_units(graph: UnitGraph, s: StudySettings, sessions: Sessions, data: DataCache,
                     ctx: dict[str, Any]) -> None:
    """One unit per (student, task): its program's conditions (baseline, n = 0..k demos), then its rows merged into
    demo_curves/demo_curve_results.csv and decomposition.csv. It needs the pair's optimized program (requires the
    select unit) and reads its phase-1 baseline and optimized eval (the selection rule's verdict, the rows'
    phase1_delta), so it runs after those units whatever they did - as the command run after the stages would."""
    dc = s.demo_curves
    assert dc is not None
    k_most = dc.max_demos if dc.max_demos is not None else _most_demos(preset(s.preset), s.optimizer)
    for m in s.students:
        for task in s.tasks:
            base = f"{m}/{task.key}"
            requires = tuple(u for u in (f"select {base}",) if u in graph.units)
            after = tuple(u for u in (f"baseline {base}", f"eval {base}") if u in graph.units)
            try:
                n = len(data.get(task).eval_subset(s.limit))
                calls = (k_most + 2) * _eval_calls(s, sessions, m, task, task.program(), n)
            except UserError:  # data that cannot load: the unit itself reports it when it runs
                calls = 0
            touched: list[Path] = []
            graph.add(Unit(f"demo curve {base}", "demo_curves",
                           lambda m=m, task=task, touched=touched: _curve(s, sessions, data, ctx, m, task, touched),
                           requires=requires, after=after, calls=spread(sessions, m, calls), model=m, task=task.key,
                           label=f"{m} x {task.key} demo curve", results=lambda touched=touched: list(touched)))


def _curve(s: StudySettings, sessions: Sessions, data: DataCache, ctx: dict[str, Any], model: str, task: Task,
           touched: list[Path]) -> UnitResult:
    dc = s.demo_curves
    assert dc is not None
    pairs = select_pairs([sessions.spec(model)], [task], s.results_dir, s.optimizer, dc.pairs == "all")
    if not pairs:  # the command's finding: no program, or one the study's rule does not take
        rule = "has no saved program with a demo" if dc.pairs == "all" else \
            "does not qualify (no saved program, < 2 demos, or a significantly positive phase-1 delta)"
        _say(f"[demo_curves] {model} / {task.key}: {rule}: nothing to curve")
        return UnitResult("ran", "nothing to curve")
    (pair,) = pairs
    session = sessions.unit_session(model, adapter=s.adapter or pair.side.adapter)  # as the command opens it
    statuses: list[str] = []

    def on_unit(summary: Any, condition: str, n: int) -> None:
        statuses.append(summary.status)
        touched.append(summary.csv)

    rows, decomposition, failed = curve_pair(pair, session, data.get(task), s.limit, dc.max_demos, s.results_dir,
                                             force=s.force, allow_version_mismatch=False, run_ctx=ctx,
                                             repeats=s.repeats, on_unit=on_unit)
    out = demo_curves_dir(s.results_dir)
    with _CURVE_FILES:
        merge_write(out / "demo_curve_results.csv", CURVE_COLUMNS, rows, key=(0, 1))
        merge_write(out / "decomposition.csv", DECOMPOSITION_COLUMNS, [decomposition] if decomposition else [],
                    key=(0, 1))
    if failed:
        return UnitResult("failed", f"{model}/{task.key}: {failed} demo-curve condition(s) failed",
                          "a demo-curve condition failed")
    return UnitResult("reused" if statuses and all(x == "reused" for x in statuses) else "ran")


def tipping_point_units(graph: UnitGraph, s: StudySettings, sessions: Sessions, data: DataCache,
                        ctx: dict[str, Any]) -> None:
    """One unit per (model, task, n, seed) cell - its checkpoint - (n = 0: the unoptimized program, once), needing
    nothing from the other stages; then the analysis of every checkpoint, after all of them (as the command ends)."""
    tp = s.tipping_point
    assert tp is not None
    budget = preset(tp.preset)
    candidates = tp.candidates or budget.bootstrap_rs["num_candidate_programs"]
    cells = []
    for m in tp.models:
        teacher = tp.teacher or m
        for task in s.tipping_tasks:
            try:
                td = data.get(task)
                n_eval = len(td.eval_subset(s.limit))
                train, dev = optimization_sets(task, td, budget.train_size, budget.dev_size)
                evaluation = _eval_calls(s, sessions, m, task, task.program(), n_eval)
                proj = get_arm("bootstrap_rs").projected(task, budget, len(train), len(dev), 1)
            except UserError:  # the cells report it when they run
                evaluation, proj = 0, None
            for n in sorted(tp.n):
                for seed in ([None] if n == 0 else tp.seeds):
                    calls = spread(sessions, m, evaluation + (proj.student if n and proj else 0))
                    if n and proj:
                        spread(sessions, teacher, proj.teacher, calls)
                    csv = result_csv(tipping_dir(s.results_dir) / "units", prefix_for(sessions.spec(m)),
                                     tipping_arm(n, seed), task.key, m)
                    cells.append(graph.add(Unit(
                        f"tipping {m}/{task.key} n={n} seed={seed}", "tipping_point",
                        lambda m=m, task=task, n=n, seed=seed: _cell(s, sessions, data, ctx, m, task, n, seed,
                                                                     budget, candidates),
                        calls=calls, model=m, task=task.key, label=f"{m} x {task.key} n={n} seed={seed}",
                        results=lambda csv=csv: [csv])).id)
    graph.add(Unit("tipping_point analysis", "tipping analysis", lambda: _analyze(s), after=tuple(cells)))


def _cell(s: StudySettings, sessions: Sessions, data: DataCache, ctx: dict[str, Any], model: str, task: Task, n: int,
          seed: int | None, budget: Preset, candidates: int) -> UnitResult:
    tp = s.tipping_point
    assert tp is not None
    td = data.get(task)
    train, dev = optimization_sets(task, td, budget.train_size, budget.dev_size)  # a UserError: the cell's failure
    # the command's sessions: the student under the preset's generation cap, the teacher (if any) under its own
    student = sessions.unit_session(model, max_tokens=budget.max_tokens)
    teacher = sessions.unit_session(tp.teacher) if tp.teacher else student
    _, status = run_cell(task, td, td.eval_subset(s.limit), student, teacher, n, seed, train, dev, candidates,
                         s.results_dir, s.force, ctx, repeats=s.repeats)
    return UnitResult("reused" if status == "reused" else "ran")


def _analyze(s: StudySettings) -> UnitResult:
    analyze(s.results_dir, s.config)  # every checkpoint under results/tipping_point, as the command's last step
    return UnitResult("ran")

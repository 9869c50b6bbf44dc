"""Study: demo-count curves (phase 3) — an optimized program with its instructions and only its first n demos,
n = 0..k, on the same eval examples as the baseline.

Separates what optimization changed: instruction effect = score(n=0) - baseline; demo effect = score(n=k) -
score(n=0), each with a paired 95% CI. Every condition is an evaluation unit (resumable); the curve files
accumulate pairs across runs.

The best n is chosen on a seeded half of the eval examples and reported (best_score, and its paired lift over the
baseline with CI and p) on the other half only (stats.selection): choosing and testing on the same examples would
overstate it.

With --repeats k every condition answers each example k times (the stage runners' mechanism: EvalUnit.repeats,
one LM per attempt); each point is then the mean of per-example means with a cluster-bootstrap interval, the
effects are paired on per-example means, and each point reports its run-to-run spread (src.studies.attempts).
"""

from __future__ import annotations

import csv
import io
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dspy

from src.errors import UserError
from src.evaluation.unit import EvalUnit, UnitSummary, run_unit
from src.optimization.programs import load_program
from src.results.files import atomic_write_text, csv_float
from src.results.ledger import ledger_append
from src.results.naming import (
    demo_curve_arm,
    demo_curves_dir,
    parse_program_name,
    prefix_for,
    program_path,
    programs_dir,
    result_csv,
    sidecar_path,
)
from src.results.schema import ProgramMeta
from src.stats.comparison import paired_delta, score_interval
from src.stats.selection import choose_best, selection_split
from src.studies.attempts import SPREAD_COLUMNS, Point, load_point, point_metric, spread_cells

if TYPE_CHECKING:
    from src.backends.session import ModelSession
    from src.registry import ModelSpec
    from src.tasks.base import Task
    from src.tasks.splits import TaskData

CURVE_COLUMNS = ["model", "task", "condition", "n_demos", "score", "ci_low", "ci_high", "n_examples", "n_errors",
                 "elapsed_s", "phase1_delta", *SPREAD_COLUMNS, "run_scores"]
DECOMPOSITION_COLUMNS = ["model", "task", "k", "baseline", "score_n0", "score_nk", "instruction_effect",
                         "instruction_ci_low", "instruction_ci_high", "instruction_p", "demo_effect", "demo_ci_low",
                         "demo_ci_high", "demo_p", "best_n", "best_score", "n_examples", "best_n_selected_on",
                         "best_tested_on", "best_vs_baseline", "best_vs_baseline_ci_low", "best_vs_baseline_ci_high",
                         "best_vs_baseline_p", "repeats"]


@dataclass
class CurvePair:
    """One (model, task) to curve: its saved program, sidecar and the phase-1 delta it had."""

    model: str
    task: Task
    program: Path
    side: ProgramMeta
    phase1_delta: float | None

    def k(self, max_demos: int | None) -> int:
        return min(self.side.demo_count or 0, max_demos if max_demos is not None else 10**6)


def optimized_models(results_dir: Path, optimizer: str, tasks: Iterable[str]) -> list[str]:
    """Models with a saved `optimizer` program in results_dir: read from each sidecar's own `model` field, or
    parsed from the file name against the known task keys (model keys may contain '_', '.', '-')."""
    found: set[str] = set()
    for side in sorted(programs_dir(results_dir).glob("*.meta.json")):
        try:
            meta = ProgramMeta.read(side)
        except UserError:
            meta = ProgramMeta()
        if meta.model and meta.optimizer:
            if meta.optimizer == optimizer:
                found.add(meta.model)
            continue
        name = parse_program_name(side.name, tasks=tasks, optimizers=[optimizer])
        if name is not None:
            found.add(name.model)
    return sorted(found)


def with_first_demos(program: dspy.Module, n: int) -> dspy.Module:
    """A copy keeping every predictor's optimized instructions and only its first n demos."""
    copy = program.deepcopy()
    for _, predictor in copy.named_predictors():
        predictor.demos = list(predictor.demos or [])[:n]
    return copy


def phase1_delta(results_dir: Path, spec: ModelSpec, task: Task) -> tuple[float | None, str | None]:
    """The optimized - baseline delta from phase 1 on shared examples (per-example means when they were run with
    repeats), and its verdict (None if not run)."""
    base = result_csv(results_dir, prefix_for(spec), "baseline", task.key, spec.key)
    opt = result_csv(results_dir, prefix_for(spec), "optimized", task.key, spec.key)
    if not (base.is_file() and opt.is_file()):
        return None, None
    a = load_point(base, "baseline", spec.key, task)
    b = load_point(opt, "optimized", spec.key, task)
    shared = [i for i in a.scores if i in b.scores]
    d = paired_delta([a.scores[i] for i in shared], [b.scores[i] for i in shared], point_metric(task, a, b))
    return d.delta, d.verdict


def select_pairs(specs: list[ModelSpec], tasks: list[Task], results_dir: Path, optimizer: str,
                 explicit: bool) -> list[CurvePair]:
    """The (model, task) pairs to curve. Default: >= 2 demos and a phase-1 delta that is not significantly
    positive; explicitly named pairs are taken as long as their program has a demo."""
    pairs = []
    for spec in specs:
        for task in tasks:
            path = program_path(results_dir, spec.key, task.key, optimizer)
            side = ProgramMeta.read_optional(sidecar_path(path)) or ProgramMeta()
            if not path.is_file() or side.status == "failed":
                if explicit:
                    print(f"  skip {spec.key} x {task.key}: no saved {optimizer} program", file=sys.stderr)
                continue
            n_demos = side.demo_count
            delta, verdict = phase1_delta(results_dir, spec, task)
            if not explicit:
                if (n_demos or 0) < 2 or verdict == "improved":
                    continue
            elif not n_demos:
                print(f"  skip {spec.key} x {task.key}: the program has no demos (nothing to curve)", file=sys.stderr)
                continue
            pairs.append(CurvePair(spec.key, task, path, side, delta))
    return pairs


def curve_pair(pair: CurvePair, session: ModelSession, data: TaskData, limit: int | None, max_demos: int | None,
               results_dir: Path, *, force: bool, allow_version_mismatch: bool, run_ctx: dict[str, Any],
               repeats: int = 1, on_unit: Callable[[UnitSummary, str, int], None] | None = None,
               ) -> tuple[list[list[Any]], list[Any] | None, int]:
    """Evaluate one pair's conditions (baseline, then n = 0..k demos), each example `repeats` times; (curve rows,
    decomposition row, failures). `on_unit` (--mlflow) is told of every condition's unit as it ends."""
    task, m = pair.task, pair.model
    out_dir = demo_curves_dir(results_dir)
    examples = data.eval_subset(limit)
    optimized, info = load_program(task, pair.program, allow_version_mismatch=allow_version_mismatch,
                                   chain_of_thought=pair.side.is_chain_of_thought)
    k = min(pair.k(max_demos), max(len(pr.demos or []) for _, pr in optimized.named_predictors()))
    conditions: list[tuple[str, int, dspy.Module, dict[str, Any]]] = [("baseline", 0, task.program(),
                                                                      {"kind": "baseline"})]
    conditions += [("optimized_instructions", n, with_first_demos(optimized, n), {**info, "n_demos": n})
                   for n in range(k + 1)]
    points: dict[tuple[str, int], Point] = {}
    rows: list[list[Any]] = []
    failed = 0
    for cond, n, program, pinfo in conditions:
        arm = demo_curve_arm(None if cond == "baseline" else n)
        csv_path = result_csv(out_dir / "units", prefix_for(session.spec), arm, task.key, m)
        t0 = time.time()
        try:
            summary = run_unit(EvalUnit(arm, task, data, examples, program, csv_path, pinfo, repeats=repeats),
                               session, results_dir=out_dir, force=force, run_ctx=run_ctx)
        except UserError as exc:
            print(f"  {m} x {task.key} {arm}: FAILED: {exc}", file=sys.stderr)
            ledger_append(f"{m} x {task.key} {arm}", "failed", str(exc))
            failed += 1
            if on_unit is not None:
                on_unit(UnitSummary(csv=csv_path, status="failed", message=str(exc), wall_s=time.time() - t0), cond, n)
            continue
        ledger_append(f"{m} x {task.key} {arm}", summary.status)
        if on_unit is not None:
            on_unit(summary, cond, n)
        point = points[(cond, n)] = load_point(csv_path, arm, m, task, [ex.id for ex in examples])
        iv = score_interval(list(point.scores.values()), point_metric(task, point))
        st = point.stability
        rows.append([m, task.key, cond, n, csv_float(iv.value), csv_float(iv.lo), csv_float(iv.hi), iv.n,
                     sum(1 for r in point.unit.attempts if r.error), f"{time.time() - t0:.1f}",
                     csv_float(pair.phase1_delta), *spread_cells([st], point.repeats),
                     " ".join(csv_float(x) for x in st.run_scores) if st else ""])
        spread = f"; run-to-run sd {st.run_sd:.3f} over {st.k} repeats" if st else ""
        print(f"  {m} x {task.key} {cond} n={n}: {iv.value:.3f} [{iv.lo:.3f}, {iv.hi:.3f}]{spread} ({summary.status})",
              file=sys.stderr)
    if not all(c in points for c in (("baseline", 0), ("optimized_instructions", 0), ("optimized_instructions", k))):
        return rows, None, failed
    metric = point_metric(task, *points.values())  # per-example means for every effect when any point has repeats
    base, n0, nk = (points[c].scores for c in (("baseline", 0), ("optimized_instructions", 0),
                                               ("optimized_instructions", k)))
    ids = [ex.id for ex in examples if ex.id in base and ex.id in n0 and ex.id in nk]
    instr = paired_delta([base[i] for i in ids], [n0[i] for i in ids], metric)
    demo = paired_delta([n0[i] for i in ids], [nk[i] for i in ids], metric)
    curve = {n: points[("optimized_instructions", n)].scores for n in range(k + 1)
             if ("optimized_instructions", n) in points}
    select_ids, test_ids = selection_split(ids)
    best_n = choose_best(curve, select_ids, metric.aggregate)
    if best_n is None:  # too few examples to halve: the choice cannot be made honestly
        best_cells: list[Any] = ["", "", "", ""] + [""] * 4
    else:
        best = paired_delta([base[i] for i in test_ids], [curve[best_n][i] for i in test_ids], metric)
        best_cells = [best_n, csv_float(best.b_score), f"eval half A ({len(select_ids)} examples)",
                      f"eval half B ({len(test_ids)} examples)", *map(csv_float, [best.delta, best.lo, best.hi,
                                                                                   best.p])]
    numbers = [instr.a_score, instr.b_score, demo.b_score, instr.delta, instr.lo, instr.hi, instr.p,
               demo.delta, demo.lo, demo.hi, demo.p]
    print(f"  {m} x {task.key}: instruction effect {instr.delta:+.3f} [{instr.lo:+.3f}, {instr.hi:+.3f}] "
          f"({instr.verdict}); demo effect {demo.delta:+.3f} [{demo.lo:+.3f}, {demo.hi:+.3f}] "
          f"({demo.verdict}); best n = {best_n if best_n is not None else '-'} (chosen on half of the examples, "
          f"scored on the other half)")
    reps = max(p.repeats for p in points.values())
    return rows, [m, task.key, k, *map(csv_float, numbers), *best_cells[:2], len(ids), *best_cells[2:], reps], failed


def merge_write(path: Path, columns: list[str], rows: list[list[Any]], key: tuple[int, ...]) -> None:
    """Replace this run's rows, keep other pairs' rows from earlier runs (a curve file accumulates pairs)."""
    kept: list[list[Any]] = []
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            # A file from a version with fewer columns (a prefix of today's) keeps its rows, padded.
            if header and header == columns[: len(header)]:
                new_keys = {tuple(str(r[i]) for i in key) for r in rows}
                kept = [r + [""] * (len(columns) - len(r)) for r in reader if tuple(r[i] for i in key) not in new_keys]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(columns)
    writer.writerows(kept + rows)
    atomic_write_text(path, buf.getvalue())

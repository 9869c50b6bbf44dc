"""Phase 3, demo-count curves: an optimized program with its instructions and the first n demos, n = 0..k.

Separates what optimization changed: instruction effect = score(n=0) - baseline; demo effect = score(n=k) - score(n=0),
each with a paired 95% CI on the same eval examples as the baseline.
"""

from __future__ import annotations

import csv
import io
import sys
import time
from pathlib import Path

import dspy

from src import cli
from src.backends import preflight
from src.comparison import Metric, paired_delta, score_interval
from src.config import DEFAULT_EVAL_LIMIT, load_config
from src.consolidation.format import csv_float
from src.errors import UserError
from src.evaluation import DataCache, file_kind
from src.programs import load_program, program_path, sidecar_path
from src.results import atomic_write_text, ledger_append, read_csv, read_json, result_csv, run_context
from src.tasks import get_task, resolve_task_keys
from src.units import EvalUnit, ModelSession, record_score, run_unit

CURVE_COLUMNS = ["model", "task", "condition", "n_demos", "score", "ci_low", "ci_high", "n_examples", "n_errors",
                 "elapsed_s", "phase1_delta"]
DECOMPOSITION_COLUMNS = ["model", "task", "k", "baseline", "score_n0", "score_nk", "instruction_effect",
                         "instruction_ci_low", "instruction_ci_high", "instruction_p", "demo_effect", "demo_ci_low",
                         "demo_ci_high", "demo_p", "best_n", "best_score", "n_examples"]


def with_first_demos(program: dspy.Module, n: int) -> dspy.Module:
    """A copy keeping every predictor's optimized instructions and only its first n demos."""
    copy = program.deepcopy()
    for _, predictor in copy.named_predictors():
        predictor.demos = list(predictor.demos or [])[:n]
    return copy


def phase1_delta(results_dir: Path, model: str, kind: str, task) -> tuple[float | None, str | None]:
    """The optimized - baseline delta from phase 1 on shared examples, and its verdict (None if not run)."""
    base = result_csv(results_dir, kind, "baseline", task.key, model)
    opt = result_csv(results_dir, kind, "optimized", task.key, model)
    if not (base.is_file() and opt.is_file()):
        return None, None
    a = {r.example_id: r for r in read_csv(base)}
    b = {r.example_id: r for r in read_csv(opt)}
    shared = [i for i in a if i in b]
    d = paired_delta([record_score(a[i]) for i in shared], [record_score(b[i]) for i in shared], Metric.of(task))
    return d.delta, d.verdict


def select_pairs(models: list[str], tasks, results_dir: Path, optimizer: str, explicit: bool, config) -> list[tuple]:
    """(model, task, program file, k) to curve. Default: >= 2 demos and a phase-1 delta that is not significantly
    positive; explicitly named pairs are taken as long as their program has a demo."""
    pairs = []
    for m in models:
        kind = file_kind(config.model(m))
        for task in tasks:
            path = program_path(results_dir, m, task.key, optimizer)
            side = read_json(sidecar_path(path)) if sidecar_path(path).is_file() else {}
            if not path.is_file() or side.get("status") == "failed":
                if explicit:
                    print(f"  skip {m} x {task.key}: no saved {optimizer} program", file=sys.stderr)
                continue
            n_demos = side.get("n_demos_total")
            delta, verdict = phase1_delta(results_dir, m, kind, task)
            if not explicit:
                if (n_demos or 0) < 2:
                    continue
                if verdict == "improved":
                    continue
            elif not n_demos:
                print(f"  skip {m} x {task.key}: the program has no demos (nothing to curve)", file=sys.stderr)
                continue
            pairs.append((m, task, path, side, delta))
    return pairs


def main() -> int:
    p = cli.parser(__doc__, limit_default=DEFAULT_EVAL_LIMIT)
    p.add_argument("--optimizer", default="mipro_v2")
    p.add_argument("--max-demos", type=int, default=None, help="largest n to evaluate (default: all demos)")
    p.add_argument("--allow-version-mismatch", action="store_true")
    args = p.parse_args()
    config = load_config()
    results_dir = Path(args.results_dir) if args.results_dir else config.results_dir
    models = cli.split_list(args.models) or sorted({f.name.split("_")[0] for f in (results_dir / "optimized_programs")
                                                    .glob("*.json") if not f.name.endswith(".meta.json")})
    for m in models:
        config.model(m)
    tasks = [get_task(k, config) for k in resolve_task_keys(args.tasks, config)]
    explicit = bool(args.models) and args.tasks != "all"
    pairs = select_pairs(models, tasks, results_dir, args.optimizer, explicit, config)
    if not pairs:
        raise UserError("no (model, task) pair qualifies: run the optimization first, or name pairs with --models and "
                        "--tasks (the default takes programs with >= 2 demos whose phase-1 delta was not "
                        "significantly positive)")
    out_dir = results_dir / "demo_curves"
    for m, task, path, side, _ in pairs:
        k = min(side.get("n_demos_total") or 0, args.max_demos if args.max_demos is not None else 10**6)
        print(f"  {m} x {task.key}: baseline + n = 0..{k} demos ({path.name})")
    if args.dry_run:
        n = args.limit or 0
        total = sum((min(s.get("n_demos_total") or 0, args.max_demos or 10**6) + 2) * n for _, _, _, s, _ in pairs)
        print(f"projected LM calls: {total} (one per example and condition; cached baseline calls cost none)")
        return 0

    preflight(sorted({m for m, *_ in pairs}), config, args.adapter)
    data = DataCache(config, args.data)
    ctx = run_context()
    curve_rows, decomposition, failed = [], [], 0
    sessions: dict[str, ModelSession] = {}
    for m, task, path, side, p1_delta in pairs:
        spec = config.model(m)
        if m not in sessions:
            sessions[m] = ModelSession.open(m, config, adapter=args.adapter or side.get("adapter"),
                                            concurrency=args.concurrency or None, cache=not args.no_cache)
        session = sessions[m]
        td = data.get(task)
        examples = td.eval_subset(args.limit or None)
        optimized, info = load_program(task, path, allow_version_mismatch=args.allow_version_mismatch,
                                       chain_of_thought=side.get("module") == "ChainOfThought")
        k = min(side.get("n_demos_total") or 0, args.max_demos if args.max_demos is not None else 10**6)
        k = min(k, max(len(pr.demos or []) for _, pr in optimized.named_predictors()))
        conditions = [("baseline", 0, task.program(), {"kind": "baseline"})]
        conditions += [("optimized_instructions", n, with_first_demos(optimized, n), {**info, "n_demos": n})
                       for n in range(k + 1)]
        scores_by_cond = {}
        metric = Metric.of(task)
        for cond, n, program, pinfo in conditions:
            phase = "baseline" if cond == "baseline" else f"demo-n{n}"
            csv_path = result_csv(out_dir / "units", file_kind(spec), phase, task.key, m)
            t0 = time.time()
            try:
                summary = run_unit(EvalUnit(phase, task, td, examples, program, csv_path, pinfo), session,
                                   results_dir=out_dir, force=args.force, run_ctx=ctx)
            except UserError as exc:
                print(f"  {m} x {task.key} {phase}: FAILED: {exc}", file=sys.stderr)
                ledger_append(f"{m} x {task.key} {phase}", "failed", str(exc))
                failed += 1
                continue
            ledger_append(f"{m} x {task.key} {phase}", summary.status)
            recs = {r.example_id: r for r in read_csv(csv_path)}
            ordered = [recs[ex.id] for ex in examples if ex.id in recs]
            scores_by_cond[(cond, n)] = {r.example_id: record_score(r) for r in ordered}
            iv = score_interval([record_score(r) for r in ordered], metric)
            curve_rows.append([m, task.key, cond, n, csv_float(iv.value), csv_float(iv.lo), csv_float(iv.hi), iv.n,
                               sum(1 for r in ordered if r.error), f"{time.time() - t0:.1f}", csv_float(p1_delta)])
            print(f"  {m} x {task.key} {cond} n={n}: {iv.value:.3f} [{iv.lo:.3f}, {iv.hi:.3f}] ({summary.status})",
                  file=sys.stderr)
        base = scores_by_cond.get(("baseline", 0))
        n0 = scores_by_cond.get(("optimized_instructions", 0))
        nk = scores_by_cond.get(("optimized_instructions", k))
        if base and n0 and nk:
            ids = [ex.id for ex in examples if ex.id in base and ex.id in n0 and ex.id in nk]
            instr = paired_delta([base[i] for i in ids], [n0[i] for i in ids], metric)
            demo = paired_delta([n0[i] for i in ids], [nk[i] for i in ids], metric)
            curve = {n: metric.aggregate([scores_by_cond[("optimized_instructions", n)][i] for i in ids])
                     for n in range(k + 1) if ("optimized_instructions", n) in scores_by_cond}
            best_n = max(curve, key=lambda n: (curve[n], -n))
            numbers = [instr.a_score, instr.b_score, demo.b_score, instr.delta, instr.lo, instr.hi, instr.p,
                       demo.delta, demo.lo, demo.hi, demo.p]
            decomposition.append([m, task.key, k, *map(csv_float, numbers), best_n, csv_float(curve[best_n]),
                                  len(ids)])
            print(f"  {m} x {task.key}: instruction effect {instr.delta:+.3f} [{instr.lo:+.3f}, {instr.hi:+.3f}] "
                  f"({instr.verdict}); demo effect {demo.delta:+.3f} [{demo.lo:+.3f}, {demo.hi:+.3f}] "
                  f"({demo.verdict}); best n = {best_n}")
    _merge_write(out_dir / "demo_curve_results.csv", CURVE_COLUMNS, curve_rows, key=(0, 1))
    _merge_write(out_dir / "decomposition.csv", DECOMPOSITION_COLUMNS, decomposition, key=(0, 1))
    print(f"wrote {out_dir / 'demo_curve_results.csv'} and {out_dir / 'decomposition.csv'}")
    return 1 if failed else 0


def _merge_write(path: Path, columns: list[str], rows: list[list], key: tuple[int, ...]) -> None:
    """Replace this run's rows, keep other pairs' rows from earlier runs (a curve file accumulates pairs)."""
    kept: list[list] = []
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header == columns:
                new_keys = {tuple(str(r[i]) for i in key) for r in rows}
                kept = [r for r in reader if tuple(r[i] for i in key) not in new_keys]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(columns)
    writer.writerows(kept + rows)
    atomic_write_text(path, buf.getvalue())


if __name__ == "__main__":
    cli.run(main)

"""python -m src.tipping_point.runner / .analyzer: the tipping-point study (phase 5) and its analysis."""

from __future__ import annotations

import sys

from src.backends.session import Sessions, SessionOptions
from src.commands import budget as spend
from src.commands import common
from src.errors import UserError
from src.evaluation.matrix import DataCache
from src.optimization.presets import preset
from src.registry import load_config
from src.registry.protocol import DEFAULT_EVAL_LIMIT, STUDY_SEEDS, TIPPING_PRESET
from src.results.ledger import ledger_append
from src.results.naming import tipping_checkpoint
from src.results.provenance import run_context
from src.studies.tipping_point.analyzer import analyze
from src.studies.tipping_point.runner import DEFAULT_NS, run_cell
from src.tasks import get_task, resolve_task_keys
from src.tasks.splits import optimization_sets
from src.tracking.units import log_tipping_cell


def main() -> int:
    """Tipping point (phase 5): BootstrapFewShotWithRandomSearch limited to n demos, per seed, on the eval set.

Every (model, task, n, seed) is a checkpoint file; a killed run resumes from them. n = 0 is the unoptimized program
(no demos to search over), evaluated once. The analysis runs at the end (python -m src.tipping_point.analyzer).
"""
    p = common.parser(main.__doc__, limit_default=DEFAULT_EVAL_LIMIT)
    p.add_argument("--n", default=",".join(map(str, DEFAULT_NS)), help="demo counts to try (default 0,1,2,3,5,8)")
    p.add_argument("--seeds", default=",".join(map(str, STUDY_SEEDS)))
    p.add_argument("--teacher", default=None, help="bootstraps the demos (default: the student itself)")
    p.add_argument("--preset", default=TIPPING_PRESET, help="train/dev sizes and candidate count (see run_optimization)")
    p.add_argument("--candidates", type=common.whole_number(1), default=None,
                   help="random-search candidate programs per cell")
    common.add_repeats(p)
    common.add_mlflow(p)
    args = p.parse_args()
    if not args.models:
        raise UserError("--models is required")
    config = load_config()
    sessions = Sessions(config, SessionOptions(adapter=args.adapter, concurrency=args.concurrency or None,
                                               cache=not args.no_cache, **spend.session_options(args)))
    ns, seeds = common.distinct_ints(args.n, "--n"), common.distinct_ints(args.seeds, "--seeds")
    models = common.split_list(args.models)
    for m in models:
        sessions.spec(m)
    if args.teacher:
        sessions.spec(args.teacher)
    tasks = [get_task(k, config) for k in resolve_task_keys(args.tasks, config)]
    budget = preset(args.preset)
    candidates = args.candidates or budget.bootstrap_rs["num_candidate_programs"]
    results_dir = common.results_dir(args, config)
    cells = len(models) * len(tasks) * (int(0 in ns) + len([n for n in ns if n > 0]) * len(seeds))
    times = f" x {args.repeats} attempts" if args.repeats > 1 else ""
    print(f"tipping point: {len(models)} model(s) x {len(tasks)} task(s), n = {ns}, seeds {seeds}: {cells} cells, "
          f"{candidates} candidate programs each, eval limit {args.limit or 'all'}{times}")
    data = DataCache(config, args.data)
    optimized_cells = len([n for n in ns if n > 0]) * len(seeds)
    lines: list[spend.Line] = []
    for m in models:  # --max-cost: refuse before any call when the projected spend is over the cap
        for task in tasks:
            try:
                td = data.get(task)
                train, dev = optimization_sets(task, td, budget.train_size, budget.dev_size)
            except UserError:
                continue  # the run reports it per (model, task)
            lines += spend.tipping_lines(results_dir, sessions.spec(m), sessions.spec(args.teacher or m), task, train,
                                         len(dev), td.eval_subset(args.limit or None), optimized_cells, budget,
                                         repeats=args.repeats)
    spend.check(args.max_cost, lines, dry_run=args.dry_run)
    if args.dry_run:
        return 0
    sessions.preflight(models + ([args.teacher] if args.teacher else []), max_tokens=budget.max_tokens,
                       capped=models)
    ctx = run_context()
    tracker = common.tracker(args, results_dir)
    teacher = sessions.session(args.teacher) if args.teacher else None
    failed = 0
    for m in models:
        student = sessions.session(m, max_tokens=budget.max_tokens)
        for task in tasks:
            td = data.get(task)
            examples = td.eval_subset(args.limit or None)
            try:
                train, dev = optimization_sets(task, td, budget.train_size, budget.dev_size)
            except UserError as exc:
                print(f"  {m} x {task.key}: FAILED: {exc}", file=sys.stderr)
                failed += 1
                continue
            for n in sorted(ns):
                for seed in ([None] if n == 0 else seeds):
                    label = f"{m} x {task.key} n={n} seed={seed}"
                    try:
                        # --mlflow: each cell one run, DSPy's autolog on around its compile (as an optimization unit)
                        with tracker.optimization_run(f"tipping point {label}", {
                                "study": "tipping_point", "model": m, "task": task.key, "n": n, "seed": seed,
                                "teacher": args.teacher or m, "candidates": candidates, "preset": budget.name}):
                            _, status = run_cell(task, td, examples, student, teacher or student, n, seed, train, dev,
                                                 candidates, results_dir, args.force, ctx, repeats=args.repeats)
                            log_tipping_cell(tracker, tipping_checkpoint(results_dir, m, task.key, n, seed), task,
                                             status)
                        ledger_append(label, "reused" if status == "reused" else "ran")
                    except UserError as exc:
                        failed += 1
                        ledger_append(label, "failed", str(exc))
                        print(f"  {label}: FAILED: {exc}", file=sys.stderr)
    analyze(results_dir, config)
    return 1 if failed else 0


def analyze_main() -> int:
    """Tipping-point analysis: per (model, task), the score at each n (seed-averaged, paired against the baseline)
and the regime; writes results/tipping_point/curve.csv and summary.csv (which the consolidated report shows)."""
    p = common.Parser(description=analyze_main.__doc__)
    p.add_argument("--results-dir", default=None)
    args = p.parse_args()
    config = load_config()
    analyze(common.results_dir(args, config), config)
    return 0

"""python -m src.demo_curve_eval: the demo-count curve study (phase 3) over saved optimized programs."""

from __future__ import annotations


from src.backends.session import Sessions, SessionOptions
from src.commands import budget, common
from src.errors import UserError
from src.evaluation.matrix import DataCache
from src.evaluation.unit import UnitSummary
from src.optimization.arms import ARMS
from src.registry import load_config
from src.registry.protocol import DEFAULT_EVAL_LIMIT
from src.results.naming import demo_curves_dir
from src.results.provenance import run_context
from src.studies.demo_curves import (
    CURVE_COLUMNS,
    DECOMPOSITION_COLUMNS,
    CurvePair,
    curve_pair,
    merge_write,
    optimized_models,
    select_pairs,
)
from src.tasks import get_task, resolve_task_keys
from src.tracking.units import log_eval_unit


def main() -> int:
    """Phase 3, demo-count curves: an optimized program with its instructions and the first n demos, n = 0..k.

Separates what optimization changed: instruction effect = score(n=0) - baseline; demo effect = score(n=k) - score(n=0),
each with a paired 95% CI on the same eval examples as the baseline.
"""
    p = common.parser(main.__doc__, limit_default=DEFAULT_EVAL_LIMIT)
    p.add_argument("--optimizer", default="mipro_v2", choices=ARMS)
    p.add_argument("--max-demos", type=common.whole_number(), default=None,
                   help="largest n to evaluate (default: all demos)")
    p.add_argument("--allow-version-mismatch", action="store_true")
    common.add_repeats(p)
    common.add_mlflow(p)
    args = p.parse_args()
    config = load_config()
    results_dir = common.results_dir(args, config)
    sessions = Sessions(config, SessionOptions(concurrency=args.concurrency or None, cache=not args.no_cache,
                                               **budget.session_options(args)))
    tasks = [get_task(k, config) for k in resolve_task_keys(args.tasks, config)]
    models = common.split_list(args.models) or optimized_models(results_dir, args.optimizer, config.tasks)
    specs = [sessions.spec(m) for m in models]
    explicit = bool(args.models) and args.tasks != "all"
    pairs = select_pairs(specs, tasks, results_dir, args.optimizer, explicit)
    if not pairs and (explicit or not models):
        raise UserError("no (model, task) pair qualifies: run the optimization first, or name pairs with --models and "
                        "--tasks (the default takes programs with >= 2 demos whose phase-1 delta was not "
                        "significantly positive)")
    if not pairs:  # programs exist and the study's rule selected none of them: a finding, not a usage error
        print(f"demo curves: none of the {args.optimizer} programs of {', '.join(models)} qualifies "
              f"(the default takes programs with >= 2 demos whose phase-1 delta was not significantly positive): "
              f"nothing to curve; name pairs with --models and --tasks to curve a program with fewer demos")
        return 0
    for pair in pairs:
        print(f"  {pair.model} x {pair.task.key}: baseline + n = 0..{pair.k(args.max_demos)} demos "
              f"({pair.program.name})")
    data = DataCache(config, args.data)
    lines: list[budget.Line] = []
    for pair in pairs:  # --max-cost: refuse before any call when the projected spend is over the cap
        examples = data.get(pair.task).eval_subset(args.limit or None)
        lines += budget.demo_curve_lines(results_dir, sessions.spec(pair.model), pair.task, examples,
                                         pair.k(args.max_demos) + 2, repeats=args.repeats)
    budget.check(args.max_cost, lines, dry_run=args.dry_run)
    if args.dry_run:
        total = sum((pair.k(args.max_demos) + 2) * (args.limit or 0) * args.repeats for pair in pairs)
        times = f" x {args.repeats} attempts" if args.repeats > 1 else ""
        print(f"projected LM calls: {total} (one per example and condition{times}; cached baseline calls cost none)")
        return 0

    sessions.preflight(sorted({pair.model for pair in pairs}), args.adapter)
    ctx = run_context()
    tracker = common.tracker(args, results_dir)  # --mlflow: each condition an evaluation unit's run
    curve_rows, decomposition, failed = [], [], 0
    for pair in pairs:
        session = sessions.session(pair.model, adapter=args.adapter or pair.side.adapter)

        def on_unit(summary: UnitSummary, condition: str, n: int, pair: CurvePair = pair) -> None:
            log_eval_unit(tracker, summary, pair.task, sessions.spec(pair.model),
                          name=f"demo curve {summary.csv.stem}",
                          params={"study": "demo_curves", "condition": condition, "n_demos": n,
                                  "program_file": pair.program.name})

        rows, decomp, n_failed = curve_pair(pair, session, data.get(pair.task), args.limit or None, args.max_demos,
                                            results_dir, force=args.force,
                                            allow_version_mismatch=args.allow_version_mismatch, run_ctx=ctx,
                                            repeats=args.repeats, on_unit=on_unit if tracker.enabled else None)
        curve_rows += rows
        failed += n_failed
        if decomp is not None:
            decomposition.append(decomp)
    out_dir = demo_curves_dir(results_dir)
    merge_write(out_dir / "demo_curve_results.csv", CURVE_COLUMNS, curve_rows, key=(0, 1))
    merge_write(out_dir / "decomposition.csv", DECOMPOSITION_COLUMNS, decomposition, key=(0, 1))
    print(f"wrote {out_dir / 'demo_curve_results.csv'} and {out_dir / 'decomposition.csv'}")
    return 1 if failed else 0

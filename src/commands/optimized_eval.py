"""python -m src.run_optimized_eval: the optimized-eval stage, each saved program on the same eval examples as its baseline, with the same engine."""

from __future__ import annotations

import sys
from pathlib import Path

from src.backends.session import Sessions, SessionOptions
from src.commands import budget, common
from src.errors import UserError
from src.evaluation.matrix import MatrixRequest, evaluate_matrix, print_table
from src.optimization.arms import ARMS
from src.optimization.programs import saved_program
from src.registry import load_config
from src.registry.protocol import DEFAULT_EVAL_LIMIT
from src.results.naming import arm_for_optimizer, meta_path, prefix_for, program_path, result_csv, sidecar_path
from src.results.schema import ProgramMeta
from src.tasks import resolve_task_keys


def main() -> int:
    p = common.parser(__doc__, limit_default=DEFAULT_EVAL_LIMIT)
    p.add_argument("--optimizer", default="mipro_v2", choices=ARMS)
    p.add_argument("--allow-version-mismatch", action="store_true",
                   help="evaluate programs saved under another DSPy version (the result says so)")
    common.add_repeats(p)
    common.add_mlflow(p)
    args = p.parse_args()
    if not args.models:
        raise UserError("--models is required (e.g. --models smollm2-135m)")
    config = load_config()
    sessions = Sessions(config, SessionOptions(concurrency=args.concurrency or None, cache=not args.no_cache,
                                               **budget.session_options(args)))
    models = common.split_list(args.models)
    for m in models:
        sessions.spec(m)
    results_dir = common.results_dir(args, config)
    tasks = resolve_task_keys(args.tasks, config)

    # Same settings as the optimization (and so as the baseline): its adapter unless one is given.
    adapter = args.adapter
    if adapter is None:
        used = set()
        for m in models:
            for t in tasks:
                side = ProgramMeta.read_optional(sidecar_path(program_path(results_dir, m, t, args.optimizer)))
                if side is not None:
                    used.add(side.adapter)
        used.discard(None)
        if len(used) == 1:
            adapter = used.pop()

    req = MatrixRequest(
        arm=arm_for_optimizer(args.optimizer), model_keys=models, task_keys=tasks, data_mode=args.data,
        results_dir=results_dir, limit=args.limit or None, concurrency=args.concurrency or None, adapter=adapter,
        force=args.force, dry_run=args.dry_run, cache=not args.no_cache, repeats=args.repeats,
    )

    def optimized_program(task, spec):
        program, info = saved_program(task, spec.key, results_dir, args.optimizer,
                                      allow_version_mismatch=args.allow_version_mismatch)
        _note_missing_baseline(results_dir, spec, task)
        return program, info

    summaries = evaluate_matrix(req, config, optimized_program, sessions,
                                check_spend=budget.matrix_check(args, results_dir),
                                on_unit=None if args.dry_run else common.unit_logger(args, results_dir))
    if args.dry_run:
        return 0
    print_table(summaries)
    return 1 if any(s.status == "failed" for s in summaries) else 0


def _note_missing_baseline(results_dir: Path, spec, task) -> None:
    """The comparison is paired on example ids: say so when there is no baseline to pair with."""
    base = meta_path(result_csv(results_dir, prefix_for(spec), "baseline", task.key, spec.key))
    if not base.is_file():
        print(f"  note: no baseline for {spec.key}/{task.key} in {results_dir} yet: run src.run_baseline_v2 with the "
              f"same --data and --limit for a paired comparison", file=sys.stderr)

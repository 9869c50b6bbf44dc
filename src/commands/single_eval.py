"""`python -m src.local_eval|api_eval --model M --task T [--program PATH]`: one unit through the shared engine."""

from __future__ import annotations

from pathlib import Path

from src.backends.session import Sessions, SessionOptions
from src.commands import budget, common
from src.errors import UserError
from src.evaluation.matrix import MatrixRequest, evaluate_matrix, print_table
from src.optimization.programs import load_program
from src.registry import load_config
from src.registry.protocol import DEFAULT_EVAL_LIMIT
from src.results.naming import prefix_for


def main(prefix: str) -> int:
    """The single-run command for `prefix` models (local or api)."""
    p = common.parser(f"Evaluate one {prefix} model on one task (baseline, or a saved program with --program).",
                      limit_default=DEFAULT_EVAL_LIMIT)
    p.add_argument("--model", required=True, help="model key")
    p.add_argument("--task", required=True, help="task key")
    p.add_argument("--program", default=None, help="a saved DSPy program (.json) to evaluate instead of the baseline")
    p.add_argument("--allow-version-mismatch", action="store_true",
                   help="evaluate a program saved under another DSPy version")
    common.add_repeats(p)
    common.add_mlflow(p)
    args = p.parse_args()
    config = load_config()
    spec = config.model(args.model)
    if prefix_for(spec) != prefix:
        raise UserError(f"model {spec.key} is a {prefix_for(spec)} model: use python -m src.{prefix_for(spec)}_eval")
    req = MatrixRequest(
        arm="optimized" if args.program else "baseline", model_keys=[spec.key], task_keys=[config.task(args.task).key],
        data_mode=args.data, results_dir=common.results_dir(args, config),
        limit=args.limit or None, concurrency=args.concurrency or None, adapter=args.adapter, force=args.force,
        dry_run=args.dry_run, cache=not args.no_cache, repeats=args.repeats,
    )

    def program_for(task, _spec):
        if args.program:
            return load_program(task, Path(args.program), allow_version_mismatch=args.allow_version_mismatch)
        return task.program(), {"kind": "baseline"}

    sessions = Sessions(config, SessionOptions(adapter=args.adapter, concurrency=args.concurrency or None,
                                               cache=not args.no_cache, **budget.session_options(args)))
    summaries = evaluate_matrix(req, config, program_for, sessions, check_spend=budget.matrix_check(args, req.results_dir),
                                on_unit=None if args.dry_run else common.unit_logger(args, req.results_dir))
    print_table(summaries)
    return 1 if any(s.status == "failed" for s in summaries) else 0

"""Optimized evaluation: each saved program on the same eval examples as its baseline, with the same engine."""

from __future__ import annotations

import sys
from pathlib import Path

from src import cli
from src.config import DEFAULT_EVAL_LIMIT, load_config
from src.errors import UserError
from src.evaluation import MatrixRequest, evaluate_matrix, file_kind, print_table
from src.optimize import ARMS
from src.programs import load_program, program_path, sidecar_path
from src.results import meta_path, read_json, result_csv
from src.tasks import resolve_task_keys


def phase_for(optimizer: str) -> str:
    """MIPROv2 is the study's arm and writes *_optimized_*; the other arms write files named after themselves."""
    return "optimized" if optimizer == "mipro_v2" else optimizer


def main() -> int:
    p = cli.parser(__doc__, limit_default=DEFAULT_EVAL_LIMIT)
    p.add_argument("--optimizer", default="mipro_v2", choices=ARMS)
    p.add_argument("--allow-version-mismatch", action="store_true",
                   help="evaluate programs saved under another DSPy version (the result says so)")
    args = p.parse_args()
    if not args.models:
        raise UserError("--models is required (e.g. --models smollm2-135m)")
    config = load_config()
    models = cli.split_list(args.models)
    for m in models:
        config.model(m)
    results_dir = Path(args.results_dir) if args.results_dir else config.results_dir
    tasks = resolve_task_keys(args.tasks, config)

    # Same settings as the optimization (and so as the baseline): its adapter unless one is given.
    adapter = args.adapter
    if adapter is None:
        used = set()
        for m in models:
            for t in tasks:
                side = sidecar_path(program_path(results_dir, m, t, args.optimizer))
                if side.is_file():
                    used.add(read_json(side).get("adapter"))
        used.discard(None)
        if len(used) == 1:
            adapter = used.pop()

    req = MatrixRequest(
        phase=phase_for(args.optimizer), model_keys=models, task_keys=tasks, data_mode=args.data,
        results_dir=results_dir, limit=args.limit or None, concurrency=args.concurrency or None, adapter=adapter,
        force=args.force, dry_run=args.dry_run, cache=not args.no_cache,
    )

    def optimized_program(task, spec):
        path = program_path(results_dir, spec.key, task.key, args.optimizer)
        side = read_json(sidecar_path(path)) if sidecar_path(path).is_file() else {}
        if side.get("status") == "failed":
            raise UserError(f"{path.name}: optimization failed for every seed ({side.get('reason')})")
        program, info = load_program(task, path, allow_version_mismatch=args.allow_version_mismatch,
                                     chain_of_thought=side.get("module") == "ChainOfThought")
        _note_missing_baseline(results_dir, spec, task)
        return program, info

    summaries = evaluate_matrix(req, config, optimized_program)
    if args.dry_run:
        return 0
    print_table(summaries)
    return 1 if any(s.status == "failed" for s in summaries) else 0


def _note_missing_baseline(results_dir: Path, spec, task) -> None:
    """The comparison is paired on example ids: say so when there is no baseline to pair with."""
    base = meta_path(result_csv(results_dir, file_kind(spec), "baseline", task.key, spec.key))
    if not base.is_file():
        print(f"  note: no baseline for {spec.key}/{task.key} in {results_dir} yet: run src.run_baseline_v2 with the "
              f"same --data and --limit for a paired comparison", file=sys.stderr)


if __name__ == "__main__":
    cli.run(main)

"""python -m src.run_optimization: the optimize stage, teacher-bootstrapped MIPROv2 (or another arm) per model x task over seeds, best on dev."""

from __future__ import annotations

import sys

from src.backends.session import Sessions, SessionOptions
from src.commands import budget as spend
from src.commands import common
from src.errors import UserError
from src.evaluation.matrix import DataCache
from src.optimization.arms import ARMS, get_arm
from src.optimization.presets import preset
from src.optimization.search import OptUnitResult, quiet_optimizer_logs, run_opt_unit
from src.registry import load_config
from src.registry.protocol import STUDY_SEEDS
from src.results.ledger import ledger_append
from src.results.naming import program_path
from src.tasks import get_task, resolve_task_keys
from src.tasks.bounds import bound_for


def _seeds(value: str) -> list[int]:
    try:
        seeds = [int(v) for v in common.split_list(value)]
    except ValueError:
        raise UserError(f"--seeds must be comma-separated integers, not '{value}'") from None
    if not seeds or len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise UserError("--seeds needs at least one seed, each >= 0, and no repeats")
    return seeds


def main() -> int:
    p = common.parser(__doc__)
    p.add_argument("--optimizer", default="mipro_v2", choices=ARMS)
    p.add_argument("--teacher", default=None, help="model that bootstraps demos and proposes instructions "
                   "(default: the student itself, with a warning)")
    p.add_argument("--seeds", default=",".join(map(str, STUDY_SEEDS)), help="optimizer seeds (default 10,20,30)")
    p.add_argument("--preset", default="standard", help="budget: quick | study | standard (DSPy light) | full (medium)")
    p.add_argument("--train-size", type=common.whole_number(1), default=None,
                   help="optimizer-train examples (default: the preset's)")
    p.add_argument("--dev-size", type=common.whole_number(1), default=None,
                   help="dev examples used to pick the best seed")
    common.add_mlflow(p)
    args = p.parse_args()
    if not args.models:
        raise UserError("--models is required (e.g. --models smollm2-135m)")
    config = load_config()
    budget = preset(args.preset)
    sessions = Sessions(config, SessionOptions(adapter=args.adapter, concurrency=args.concurrency or None,
                                               cache=not args.no_cache, **spend.session_options(args)))
    models = common.split_list(args.models)
    for m in models:
        sessions.spec(m)
    tasks = [get_task(k, config) for k in resolve_task_keys(args.tasks, config)]
    seeds = _seeds(args.seeds)
    train_size = args.train_size or budget.train_size
    dev_size = args.dev_size or budget.dev_size
    results_dir = common.results_dir(args, config)
    if args.teacher:
        sessions.spec(args.teacher)
    data = DataCache(config, args.data, tasks)
    n_seeds = len(seeds) if get_arm(args.optimizer).seeded else 1

    print(f"optimizing with {args.optimizer}, preset {budget.name}, seeds {seeds}, train {train_size} / dev {dev_size}, "
          f"teacher {args.teacher or '(each student itself)'}, data {data.source.describe()}")
    total = 0
    spend_lines: list[spend.Line] = []
    for task in tasks:
        data.get(task)  # a task's program can depend on its data (Banking77's label list)
    for m in models:
        for task in tasks:
            n_train = min(train_size, max(0, len(data.get(task).train) - dev_size))
            calls = get_arm(args.optimizer).projected(task, budget, n_train, dev_size, n_seeds)
            total += calls.total
            spend_lines += spend.optimization_lines(results_dir, sessions.spec(m),
                                                    sessions.spec(args.teacher or m), task, data.get(task).train,
                                                    calls.student, calls.teacher)
            print(f"  {m} x {task.key}: projected {calls.total} LM calls (teacher {calls.teacher}, student "
                  f"{calls.student}) -> {program_path(results_dir, m, task.key, args.optimizer)}")
    print(f"projected LM calls in all: {total} (upper bounds; DSPy's MIPROv2 estimate plus bootstrapping and dev "
          f"scoring; cached responses cost none)")
    spend.check(args.max_cost, spend_lines, dry_run=args.dry_run)
    if args.dry_run:
        return 0
    if args.limit:
        print("note: --limit is for evaluation; optimization never touches the eval split", file=sys.stderr)

    sessions.preflight(models + ([args.teacher] if args.teacher else []), max_tokens=budget.max_tokens,
                       capped=models)
    quiet_optimizer_logs(args.verbose)
    teacher_session = sessions.session(args.teacher) if args.teacher else None
    tracker = common.tracker(args, results_dir)  # --mlflow: each unit a run, DSPy's autolog inside it
    results = []
    for m in models:
        # A student that teaches itself proposes instructions under the budget's cap, never under a task's bound
        own_teacher = sessions.session(m, max_tokens=budget.max_tokens)
        for task in tasks:
            shape = task.program(get_arm(args.optimizer).chain_of_thought)
            student = sessions.for_task(m, bound_for(data.get(task).provenance, shape), max_tokens=budget.max_tokens)
            print(f"[optimize] {m} / {task.key}: started", file=sys.stderr, flush=True)
            try:
                with tracker.optimization_run(f"optimize {m} x {task.key} ({args.optimizer})", {
                        "model": m, "task": task.key, "optimizer": args.optimizer, "preset": budget.name,
                        "teacher": args.teacher or m, "seeds": ",".join(map(str, seeds)), "train_size": train_size,
                        "dev_size": dev_size}):
                    r = run_opt_unit(args.optimizer, task, data.get(task), student, teacher_session or own_teacher,
                                     budget, seeds, results_dir, train_size, dev_size, args.force)
                    tracker.log_result(r)
            except UserError as exc:
                r = OptUnitResult(m, task.key, args.optimizer, "failed", message=str(exc))
            results.append(r)
            ledger_append(f"{m} x {task.key}", r.status, r.message)
            if r.status == "failed":
                print(f"[optimize] {m} / {task.key}: FAILED: {r.message}", file=sys.stderr, flush=True)
            else:
                print(f"[optimize] {m} / {task.key}: {r.status}, dev {r.baseline_dev_score:.3f} -> {r.dev_score:.3f} "
                      f"(seed {r.chosen_seed}), {r.lm_calls} LM calls, {r.wall_s:.1f}s", file=sys.stderr, flush=True)

    print("\nmodel x task  dev: baseline -> optimized (chosen seed)  LM calls  wall  status")
    for r in results:
        if r.status == "failed":
            print(f"  {r.model} x {r.task}: FAILED - {r.message}")
        else:
            print(f"  {r.model} x {r.task}: {r.baseline_dev_score:.3f} -> {r.dev_score:.3f} (seed {r.chosen_seed})  "
                  f"{r.lm_calls}  {r.wall_s:.0f}s  {r.status}")
    failed = [r for r in results if r.status == "failed"]
    print(f"{len(results) - len(failed)} unit(s) ok, {len(failed)} failed")
    return 1 if failed else 0

"""Tipping-point runner: BootstrapFewShotWithRandomSearch limited to n demos, per seed, evaluated on the eval set.

Every (model, task, n, seed) is a checkpoint file; a killed run resumes from them. n = 0 is the unoptimized program
(no demos to search over), evaluated once. The analyzer runs at the end (python -m src.tipping_point.analyzer).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import dspy

from src import cli
from src.backends import preflight
from src.config import DEFAULT_EVAL_LIMIT, STUDY_SEEDS, load_config
from src.errors import UserError
from src.evaluation import DataCache, file_kind
from src.optimize import meter_delta, optimization_sets, preset
from src.programs import describe_program
from src.results import ledger_append, read_json, result_csv, run_context, write_json
from src.tasks import get_task, resolve_task_keys
from src.tasks.data import fingerprint
from src.units import EvalUnit, ModelSession, program_sha, run_unit

DEFAULT_NS = (0, 1, 2, 3, 5, 8)


def tp_dir(results_dir: Path) -> Path:
    return results_dir / "tipping_point"


def checkpoint_path(results_dir: Path, model: str, task: str, n: int, seed: int | None) -> Path:
    tag = "baseline" if n == 0 else f"n{n}_seed{seed}"
    return tp_dir(results_dir) / "checkpoints" / f"{model}_{task}_{tag}.json"


def _ints(value: str, flag: str) -> list[int]:
    try:
        out = [int(v) for v in cli.split_list(value)]
    except ValueError:
        raise UserError(f"{flag} must be comma-separated integers, not '{value}'") from None
    if not out or any(v < 0 for v in out) or len(set(out)) != len(out):
        raise UserError(f"{flag} needs distinct integers >= 0")
    return out


def compile_n(task, trainset: list[dspy.Example], valset: list[dspy.Example], student: ModelSession,
              teacher: ModelSession, n: int, seed: int, candidates: int) -> dspy.Module:
    """BootstrapFewShotWithRandomSearch with at most n demos (bootstrapped or labelled) per predictor."""
    import random

    trainset = list(trainset)
    random.Random(seed).shuffle(trainset)  # the optimizer has no seed of its own: the seed orders its examples
    opt = dspy.BootstrapFewShotWithRandomSearch(metric=task.metric, teacher_settings={"lm": teacher.lm},
                                                max_bootstrapped_demos=n, max_labeled_demos=n,
                                                num_candidate_programs=candidates, num_threads=student.concurrency)
    with dspy.context(lm=student.lm, adapter=student.adapter):
        return opt.compile(task.program(), trainset=trainset, valset=valset)


def run_cell(task, data, examples, student: ModelSession, teacher: ModelSession, n: int, seed: int | None,
             train, dev, candidates: int, results_dir: Path, force: bool, ctx: dict[str, Any]) -> dict[str, Any]:
    """One (model, task, n, seed) cell: compile (n > 0), evaluate on eval, write the checkpoint."""
    ckpt = checkpoint_path(results_dir, student.spec.key, task.key, n, seed)
    header = {"model": student.spec.key, "task": task.key, "n": n, "seed": seed, "teacher": teacher.spec.key,
              "candidates": candidates, "train": fingerprint(train), "dev": fingerprint(dev),
              "data_source": data.provenance["source"],
              "eval_fingerprint": data.provenance["eval_fingerprint"], "n_eval": len(examples),
              "adapter": student.adapter_name}
    if ckpt.is_file() and not force:
        prior = read_json(ckpt)
        if prior.get("header") == header:
            print(f"  {student.spec.key} x {task.key} n={n} seed={seed}: reused checkpoint", file=sys.stderr)
            return prior
    t0 = time.time()
    before = {s.spec.key: s.lm.meter.snapshot() for s in (student, teacher)}
    if n == 0:
        program = task.program()
    else:
        program = compile_n(task, [ex.to_dspy() for ex in train], [ex.to_dspy() for ex in dev], student, teacher,
                            n, seed, candidates)
    compile_cost = meter_delta(before, [student, teacher])
    phase = "tp-baseline" if n == 0 else f"tp-n{n}-s{seed}"
    csv_path = result_csv(tp_dir(results_dir) / "units", file_kind(student.spec), phase, task.key, student.spec.key)
    unit = EvalUnit(phase, task, data, examples, program, csv_path,
                    {"kind": "tipping_point", "n": n, "seed": seed, "program_sha": program_sha(program)})
    try:
        summary = run_unit(unit, student, results_dir=tp_dir(results_dir), force=force, run_ctx=ctx)
    except UserError:
        # No checkpoint but an evaluation of another program: a run killed between compiling and checkpointing
        # whose recompiled program differs. That partial evaluation belongs to no checkpoint; it is archived.
        summary = run_unit(unit, student, results_dir=tp_dir(results_dir), force=True, run_ctx=ctx)
    result = {"header": header, "n": n, "seed": seed, "score": summary.score, "n_examples": summary.n,
              "errors": summary.errors, "parse_failures": summary.parse_failures, "csv": str(csv_path),
              "predictors": describe_program(program), "compile_cost": compile_cost,
              "wall_s": round(time.time() - t0, 2)}
    write_json(ckpt, result)
    print(f"  {student.spec.key} x {task.key} n={n} seed={seed}: score {summary.score:.3f} "
          f"({compile_cost['lm_calls']} optimization calls, {result['wall_s']:.0f}s)", file=sys.stderr, flush=True)
    return result


def main() -> int:
    p = cli.parser(__doc__, limit_default=DEFAULT_EVAL_LIMIT)
    p.add_argument("--n", default=",".join(map(str, DEFAULT_NS)), help="demo counts to try (default 0,1,2,3,5,8)")
    p.add_argument("--seeds", default=",".join(map(str, STUDY_SEEDS)))
    p.add_argument("--teacher", default=None, help="bootstraps the demos (default: the student itself)")
    p.add_argument("--preset", default="quick", help="train/dev sizes and candidate count (see run_optimization)")
    p.add_argument("--candidates", type=int, default=None, help="random-search candidate programs per cell")
    args = p.parse_args()
    if not args.models:
        raise UserError("--models is required")
    config = load_config()
    ns, seeds = _ints(args.n, "--n"), _ints(args.seeds, "--seeds")
    models = cli.split_list(args.models)
    for m in models:
        config.model(m)
    if args.teacher:
        config.model(args.teacher)
    tasks = [get_task(k, config) for k in resolve_task_keys(args.tasks, config)]
    budget = preset(args.preset)
    candidates = args.candidates or budget.bootstrap_rs["num_candidate_programs"]
    results_dir = Path(args.results_dir) if args.results_dir else config.results_dir
    cells = len(models) * len(tasks) * (int(0 in ns) + len([n for n in ns if n > 0]) * len(seeds))
    print(f"tipping point: {len(models)} model(s) x {len(tasks)} task(s), n = {ns}, seeds {seeds}: {cells} cells, "
          f"{candidates} candidate programs each, eval limit {args.limit or 'all'}")
    if args.dry_run:
        return 0
    preflight(models + ([args.teacher] if args.teacher else []), config, args.adapter)
    data = DataCache(config, args.data)
    ctx = run_context()
    teacher = ModelSession.open(args.teacher, config, adapter=args.adapter, concurrency=args.concurrency or None,
                                cache=not args.no_cache) if args.teacher else None
    failed = 0
    for m in models:
        student = ModelSession.open(m, config, adapter=args.adapter, concurrency=args.concurrency or None,
                                    cache=not args.no_cache, max_tokens=budget.max_tokens)
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
                    try:
                        run_cell(task, td, examples, student, teacher or student, n, seed, train, dev, candidates,
                                 results_dir, args.force, ctx)
                        ledger_append(f"{m} x {task.key} n={n} seed={seed}", "ran")
                    except UserError as exc:
                        failed += 1
                        ledger_append(f"{m} x {task.key} n={n} seed={seed}", "failed", str(exc))
                        print(f"  {m} x {task.key} n={n} seed={seed}: FAILED: {exc}", file=sys.stderr)
    from src.tipping_point.analyzer import analyze

    analyze(results_dir, config)
    return 1 if failed else 0


if __name__ == "__main__":
    cli.run(main)

"""Tipping-point cells: BootstrapFewShotWithRandomSearch limited to n demos, per seed, evaluated on the eval set.

Every (model, task, n, seed) is a checkpoint file; a killed run resumes from them. n = 0 is the unoptimized program
(no demos to search over), evaluated once.

With --repeats k each cell's evaluation answers every example k times (the stage runners' mechanism:
EvalUnit.repeats, one LM per attempt). k is not part of the cell's identity: the checkpoint keeps the compiled
program, so a larger k later evaluates the missing attempts of the same program without compiling again.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dspy

from src.backends.session import meter_delta
from src.evaluation.unit import EvalUnit, program_sha, run_unit
from src.optimization.programs import describe_program
from src.registry.protocol import TIPPING_NS
from src.results.checkpoint import REFUSE, REPLACE, claim
from src.results.naming import prefix_for, result_csv, tipping_arm, tipping_checkpoint, tipping_dir, unit_files
from src.results.schema import TippingCheckpoint
from src.tasks.base import to_dspy
from src.tasks.example import fingerprint

if TYPE_CHECKING:
    from src.backends.session import ModelSession
    from src.tasks.base import Task
    from src.tasks.example import TaskExample
    from src.tasks.splits import TaskData

DEFAULT_NS = TIPPING_NS  # the protocol's (src.registry.protocol): the study file's default too


def compile_n(task: Task, trainset: list[dspy.Example], valset: list[dspy.Example], student: ModelSession,
              teacher: ModelSession, n: int, seed: int, candidates: int) -> dspy.Module:
    """BootstrapFewShotWithRandomSearch with at most n demos (bootstrapped or labelled) per predictor."""
    trainset = list(trainset)
    random.Random(seed).shuffle(trainset)  # the optimizer has no seed of its own: the seed orders its examples
    opt = dspy.BootstrapFewShotWithRandomSearch(metric=task.metric, teacher_settings={"lm": teacher.lm},
                                                max_bootstrapped_demos=n, max_labeled_demos=n,
                                                num_candidate_programs=candidates, num_threads=student.concurrency)
    with dspy.context(lm=student.lm, adapter=student.adapter):
        return opt.compile(task.program(), trainset=trainset, valset=valset)


def run_cell(task: Task, data: TaskData, examples: list[TaskExample], student: ModelSession, teacher: ModelSession,
             n: int, seed: int | None, train: list[TaskExample], dev: list[TaskExample], candidates: int,
             results_dir: Path, force: bool, ctx: dict[str, Any], repeats: int = 1) -> tuple[TippingCheckpoint, str]:
    """One (model, task, n, seed) cell: compile (n > 0), evaluate on eval (`repeats` attempts per example), write the
    checkpoint; (checkpoint, status: ran | reused | extended). A checkpointed cell is reused; one evaluated with
    fewer attempts is extended with its own program."""
    model = student.spec.key
    ckpt = tipping_checkpoint(results_dir, model, task.key, n, seed)
    arm = tipping_arm(n, seed)
    csv_path = result_csv(tipping_dir(results_dir) / "units", prefix_for(student.spec), arm, task.key, model)
    header = {"model": model, "task": task.key, "n": n, "seed": seed, "teacher": teacher.spec.key,
              "candidates": candidates, "train": fingerprint(train), "dev": fingerprint(dev),
              "data_source": data.provenance["source"],
              "eval_fingerprint": data.provenance["eval_fingerprint"], "n_eval": len(examples),
              "adapter": student.adapter_name}
    prior = TippingCheckpoint.read_optional(ckpt)
    if not claim(prior.header if prior else None, header, [ckpt, *unit_files(csv_path)],
                 results_dir=tipping_dir(results_dir), force=force, what=ckpt, on_stale=REFUSE, evidence=[ckpt]):
        prior = None
    if prior is not None and prior.repeats >= repeats:
        print(f"  {model} x {task.key} n={n} seed={seed}: reused checkpoint", file=sys.stderr)
        return prior, "reused"
    t0 = time.time()
    before = {s.spec.key: s.lm.meter.snapshot() for s in (student, teacher)}
    if n == 0:
        program = task.program()
    elif prior is not None and prior.program_state:  # more attempts of the program the cell compiled
        program = task.program()
        program.load_state(prior.program_state)
    else:  # a new cell, or a checkpoint from before programs were kept: compile (seeded; its evaluation is
        # replaced below if the program comes out different)
        program = compile_n(task, [to_dspy(ex) for ex in train], [to_dspy(ex) for ex in dev], student, teacher,
                            n, seed, candidates)
    compile_cost = prior.compile_cost if prior is not None else meter_delta(before, [student, teacher])
    unit = EvalUnit(arm, task, data, examples, program, csv_path,
                    {"kind": "tipping_point", "n": n, "seed": seed, "program_sha": program_sha(program)},
                    repeats=repeats)
    # The cell owns its evaluation: one left by another program (a run killed between compiling and
    # checkpointing whose recompiled program differs) belongs to no checkpoint and is replaced.
    summary = run_unit(unit, student, results_dir=tipping_dir(results_dir), force=False, run_ctx=ctx,
                       on_stale=REPLACE)
    result = TippingCheckpoint(header=header, n=n, seed=seed, score=summary.score, n_examples=summary.n,
                               errors=summary.errors, parse_failures=summary.parse_failures, csv=str(csv_path),
                               predictors=describe_program(program), compile_cost=compile_cost,
                               wall_s=round(time.time() - t0 + ((prior.wall_s or 0.0) if prior else 0.0), 2),
                               repeats=repeats, program_state=program.dump_state() if n else {})
    result.write(ckpt)
    print(f"  {model} x {task.key} n={n} seed={seed}: score {summary.score:.3f} "
          f"({compile_cost['lm_calls']} optimization calls, {result.wall_s:.0f}s)", file=sys.stderr, flush=True)
    return result, "extended" if prior is not None else "ran"

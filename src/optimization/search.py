"""One optimization unit: (model, task, optimizer) over seeds, each seed checkpointed, the best on dev kept."""

from __future__ import annotations

import importlib.metadata
import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dspy

from src.backends.library_output import library_output
from src.backends.session import meter_delta
from src.evaluation.engine import EngineSettings, evaluate
from src.evaluation.unit import program_sha
from src.optimization.arms import get_arm
from src.optimization.presets import Preset, budget_sha
from src.optimization.programs import describe_program, file_sha256
from src.results.checkpoint import REPLACE, claim
from src.results.files import scrub_file
from src.results.naming import dev_baseline, program_path, seed_dir, seed_meta, seed_program, sidecar_path
from src.results.provenance import run_context
from src.results.record import record_score
from src.results.schema import DataInfo, DevBaseline, OptimizationCost, ProgramMeta, RunInfo, SeedMeta, SeedResult
from src.tasks.base import to_dspy
from src.tasks.example import fingerprint
from src.tasks.splits import optimization_sets

if TYPE_CHECKING:
    from src.backends.session import ModelSession
    from src.tasks.base import Task
    from src.tasks.example import TaskExample
    from src.tasks.splits import TaskData


_SELF_TAUGHT_WARNED: set[str] = set()  # models already said to teach themselves in this process


@dataclass
class OptUnitResult:
    model: str
    task: str
    optimizer: str
    status: str  # ran | reused | failed
    program: Path | None = None
    chosen_seed: int | None = None
    dev_score: float | None = None
    baseline_dev_score: float | None = None
    lm_calls: int = 0
    wall_s: float = 0.0
    message: str = ""
    seeds: list[SeedResult] = field(default_factory=list)


def dev_score(program: dspy.Module, task: Task, dev: list[TaskExample], session: ModelSession, label: str,
              findings: dict[str, int] | None = None) -> float:
    """A program's corpus score on the dev set, through the same engine as every evaluation. `findings`, when
    given, receives the dev examples scored and their parse failures and backend errors (the sidecars record them,
    the study's closing summary counts them per stage)."""
    records = evaluate(program, dev, task, session.spec, session.lm, session.adapter,
                       EngineSettings(concurrency=session.concurrency, progress=False, label=label), label, "dev",
                       lambda r: None)
    if findings is not None:
        findings.update(dev_examples=len(records), dev_parse_failures=sum(1 for r in records if r.parse_failure),
                        dev_errors=sum(1 for r in records if r.error))
    return task.aggregate([record_score(r) for r in records])


def unit_header(arm: str, task: Task, data: TaskData, student: ModelSession, teacher: ModelSession, p: Preset,
                train: list[TaskExample], dev: list[TaskExample]) -> dict[str, Any]:
    """The unit's identity: a program optimized under anything else is not this unit's."""
    return {"model": student.spec.key, "task": task.key, "optimizer": arm, "teacher": teacher.spec.key,
            "preset": p.name, "budget": budget_sha(p), "adapter": student.adapter_name,
            "data_source": data.provenance["source"],
            "train_fingerprint": fingerprint(train), "dev_fingerprint": fingerprint(dev),
            "program_sha": program_sha(task.program()), "dspy": importlib.metadata.version("dspy")}


@dataclass
class OptPlan:
    """An optimization unit made ready to run its seeds: its identity checked, its dev baseline scored. `reused`:
    the unit is already done under the same identity (its seeds have nothing to do)."""

    arm: str
    task: Task
    data: TaskData
    train: list[TaskExample]
    dev: list[TaskExample]
    header: dict[str, Any]
    final: Path
    seeds_at: Path
    seeds: list[int]
    baseline_dev_score: float | None = None
    reused: OptUnitResult | None = None
    started: float = field(default_factory=time.time)


def prepare_opt_unit(arm: str, task: Task, data: TaskData, student: ModelSession, teacher: ModelSession, p: Preset,
                     seeds: list[int], results_dir: Path, train_size: int, dev_size: int, force: bool) -> OptPlan:
    """Check the unit's identity (src.results.checkpoint) and score the unoptimized program on dev, once."""
    optimizer = get_arm(arm)
    train, dev = optimization_sets(task, data, train_size, dev_size)
    header = unit_header(arm, task, data, student, teacher, p, train, dev)
    model = student.spec.key
    final = program_path(results_dir, model, task.key, arm)
    seeds_at = seed_dir(results_dir, model, task.key, arm)
    if not optimizer.seeded:
        seeds = [0]  # nothing is searched: one "seed" is the whole arm
    plan = OptPlan(arm, task, data, train, dev, header, final, seeds_at, list(seeds))

    old = ProgramMeta.read_optional(sidecar_path(final))
    same = claim(old.header if old else None, header, [final, sidecar_path(final), seeds_at],
                 results_dir=results_dir, force=force, what=final, evidence=[final, sidecar_path(final)])
    if same and old is not None and old.status == "ok" and final.is_file() and \
            sorted(s.seed for s in old.seeds) == sorted(plan.seeds):
        plan.reused = OptUnitResult(model, task.key, arm, "reused", final, old.chosen_seed, old.dev_score,
                                    old.baseline_dev_score, old.optimization_cost.lm_calls, 0.0, seeds=old.seeds)
        return plan
    seeds_at.mkdir(parents=True, exist_ok=True)

    if model == teacher.spec.key and model not in _SELF_TAUGHT_WARNED:  # said once per model, not once per task
        _SELF_TAUGHT_WARNED.add(model)
        print(f"  warning: no --teacher: {model} teaches itself (bootstraps its own demos and proposes "
              f"its own instructions)", file=sys.stderr)
    base_file = dev_baseline(seeds_at)
    base = DevBaseline.read_optional(base_file)
    if base is None or not claim(base.header, header, [base_file], results_dir=results_dir, force=False,
                                 what=base_file, on_stale=REPLACE):
        findings: dict[str, int] = {}
        score = dev_score(task.program(), task, dev, student, f"{model}/{task.key} dev baseline", findings)
        base = DevBaseline(header=header, dev_score=score, extra=findings)
        base.write(base_file)
    plan.baseline_dev_score = base.dev_score
    return plan


def run_seed(plan: OptPlan, student: ModelSession, teacher: ModelSession, p: Preset, seed: int,
             results_dir: Path) -> SeedResult:
    """One seed of a prepared unit (its own checkpoint: a finished seed is reused)."""
    return _run_seed(plan.arm, plan.task, plan.train, plan.dev, student, teacher, p, seed, plan.seeds_at, plan.header,
                     results_dir)


def stored_seed(plan: OptPlan, seed: int) -> SeedResult | None:
    """A seed's result as its checkpoint file holds it (None: not run under this unit's identity)."""
    prior = SeedMeta.read_optional(seed_meta(plan.seeds_at, seed))
    return prior.result if prior is not None and prior.header == plan.header else None


def finish_opt_unit(plan: OptPlan, student: ModelSession, teacher: ModelSession, p: Preset,
                    seed_results: list[SeedResult]) -> OptUnitResult:
    """Keep the best seed on dev (ties: the earliest seed) as the unit's program, with its sidecar."""
    if plan.reused is not None:
        return plan.reused
    task, data, train, dev, arm, seeds, final = plan.task, plan.data, plan.train, plan.dev, plan.arm, plan.seeds, \
        plan.final
    model = student.spec.key
    ok = [s for s in seed_results if s.status == "ok"]
    cost = OptimizationCost(
        lm_calls=sum(s.lm_calls for s in seed_results), input_tokens=sum(s.input_tokens for s in seed_results),
        output_tokens=sum(s.output_tokens for s in seed_results), cache_hits=sum(s.cache_hits for s in seed_results),
        cost_usd=round(sum(s.cost_usd or 0 for s in seed_results), 6),
        wall_s=round(sum(s.wall_s or 0 for s in seed_results), 2))
    side = ProgramMeta(
        model=model, task=task.key, optimizer=arm, teacher=teacher.spec.key,
        teacher_is_student=teacher.spec.key == model, preset=p.name,
        budgets={"train_size": len(train), "dev_size": len(dev), "mipro": p.mipro, "mipro_compile": p.mipro_compile,
                 "bootstrap_rs": p.bootstrap_rs, "gepa": p.gepa, "max_tokens": p.max_tokens},
        adapter=student.adapter_name, lm={"student": student.lm_facts(), "teacher": teacher.lm_facts()},
        seeds=seed_results, baseline_dev_score=plan.baseline_dev_score,
        optimization_cost=cost, header=plan.header, data=DataInfo.from_dict(data.provenance),
        run=RunInfo.from_dict(run_context()),
        spend=student.spend.facts() if student.spend is not None else {})
    if not ok:
        side.status = "failed"
        side.reason = "; ".join(f"seed {s.seed}: {s.error}" for s in seed_results)
        side.write(sidecar_path(final))
        return OptUnitResult(model, task.key, arm, "failed", None, None, None, plan.baseline_dev_score,
                             cost.lm_calls, time.time() - plan.started, side.reason, seed_results)
    # Best of the seeds on dev; ties go to the earliest seed, so the choice is deterministic.
    best = max(ok, key=lambda s: (s.dev_score, -seeds.index(s.seed)))
    shutil.copyfile(seed_program(plan.seeds_at, best.seed), final)
    side.status, side.chosen_seed, side.dev_score = "ok", best.seed, best.dev_score
    side.predictors, side.n_demos_total, side.module = best.predictors, best.n_demos, best.module
    side.extra["baseline_predictors"] = describe_program(task.program())  # what the report diffs against
    side.program_file, side.program_sha256, side.versions = str(final), file_sha256(final), side.run.versions
    side.write(sidecar_path(final))
    return OptUnitResult(model, task.key, arm, "ran", final, best.seed, best.dev_score, plan.baseline_dev_score,
                         cost.lm_calls, time.time() - plan.started, seeds=seed_results)


def run_opt_unit(arm: str, task: Task, data: TaskData, student: ModelSession, teacher: ModelSession, p: Preset,
                 seeds: list[int], results_dir: Path, train_size: int, dev_size: int, force: bool) -> OptUnitResult:
    """Run every unfinished seed, record each (failures included), keep the best on dev. Idempotent. (The study
    scheduler runs the same three steps as separate units: prepare, one unit per seed, finish.)"""
    plan = prepare_opt_unit(arm, task, data, student, teacher, p, seeds, results_dir, train_size, dev_size, force)
    if plan.reused is not None:
        return plan.reused
    seed_results = [run_seed(plan, student, teacher, p, seed, results_dir) for seed in plan.seeds]
    return finish_opt_unit(plan, student, teacher, p, seed_results)


def _run_seed(arm: str, task: Task, train: list[TaskExample], dev: list[TaskExample], student: ModelSession,
              teacher: ModelSession, p: Preset, seed: int, seeds_at: Path, header: dict[str, Any],
              results_dir: Path) -> SeedResult:
    """One seed: compile, score on dev, save. A failure is recorded, never raised."""
    meta_file, program_file = seed_meta(seeds_at, seed), seed_program(seeds_at, seed)
    prior = SeedMeta.read_optional(meta_file)
    # A seed belongs to its unit, whose own identity check already refused other settings: a seed left by other
    # settings (a run killed before its unit's sidecar was written) is archived and redone.
    if claim(prior.header if prior else None, header, [meta_file, program_file], results_dir=results_dir,
             force=False, what=meta_file, on_stale=REPLACE, evidence=[meta_file]) and prior is not None and \
            (prior.status == "failed" or program_file.is_file()):
        print(f"[optimize] {student.spec.key} / {task.key} seed {seed}: reused ({prior.status}, "
              f"dev={prior.dev_score})", file=sys.stderr)
        return prior.result
    t0 = time.time()
    before = {s.spec.key: s.lm.meter.snapshot() for s in (student, teacher)}
    result = SeedResult(seed=seed)
    with dspy.context(lm=student.lm, adapter=student.adapter):
        try:
            with library_output():  # the optimizer's own prints go to the run's log (src.commands.console)
                program = get_arm(arm).compile(task, [to_dspy(ex) for ex in train], student, teacher, p, seed)
            result.dev_score = dev_score(program, task, dev, student, f"{student.spec.key}/{task.key} seed {seed}",
                                         result.extra)
            result.predictors = describe_program(program)
            result.n_demos = sum(v["n_demos"] for v in result.predictors.values())
            result.module = type(program).__name__
            program.save(str(program_file))
            scrub_file(program_file)  # instructions and demos come from model replies: no key is ever saved
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - a proposer/bootstrap failure is an event of this seed
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            result.status, result.error, result.dev_score = "failed", f"{type(exc).__name__}: {first}"[:500], None
    spent = meter_delta(before, [student, teacher])
    result.by_model = spent["by_model"]
    result.lm_calls, result.input_tokens, result.output_tokens = spent["lm_calls"], spent["input_tokens"], \
        spent["output_tokens"]
    result.cache_hits, result.cost_usd = spent["cache_hits"], spent["cost_usd"]
    result.wall_s = round(time.time() - t0, 2)
    state = f"dev={result.dev_score:.3f}" if result.status == "ok" else f"FAILED ({result.error})"
    cached = f" ({result.cache_hits} cached)" if result.cache_hits else ""
    # one line per seed, at its end, naming its unit (seeds of many units end interleaved under the study scheduler)
    print(f"[optimize] {student.spec.key} / {task.key} seed {seed} ({arm}, teacher {teacher.spec.key}): {state}, "
          f"{result.lm_calls} LM calls{cached}, {result.wall_s:.1f}s\n", end="", file=sys.stderr, flush=True)
    SeedMeta(header=header, status=result.status, dev_score=result.dev_score, result=result).write(meta_file)
    return result


def quiet_optimizer_logs(verbose: bool) -> None:
    """MIPROv2 and optuna narrate every step at INFO; keep that for --verbose."""
    level = logging.INFO if verbose else logging.WARNING
    for name in ("dspy.teleprompt", "dspy.propose", "optuna", "dspy.evaluate"):
        logging.getLogger(name).setLevel(level)
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    except ImportError:
        pass

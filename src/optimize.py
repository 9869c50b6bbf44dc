"""Optimizer arms and budget presets, and one optimization unit: (model, task, optimizer) over seeds, best on dev."""

from __future__ import annotations

import logging
import random
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dspy

from src.engine import EngineSettings, evaluate
from src.errors import UserError
from src.programs import describe_program, file_sha256, program_path, sidecar_path
from src.results import read_json, run_context, write_json
from src.tasks.data import optimization_splits

if TYPE_CHECKING:
    from src.tasks.base import Task, TaskExample
    from src.tasks.data import TaskData
    from src.units import ModelSession

ARMS = ("mipro_v2", "bootstrap_rs", "gepa", "cot_zero_shot")


@dataclass(frozen=True)
class Preset:
    """Fixed optimizer settings: a budget is a preset, never ad-hoc flags scattered over runs."""

    name: str
    train_size: int
    dev_size: int
    mipro: dict[str, Any]  # MIPROv2(...) arguments
    mipro_compile: dict[str, Any]  # MIPROv2.compile(...) arguments
    bootstrap_rs: dict[str, Any]
    gepa: dict[str, Any]
    max_tokens: int | None = None  # cap on generation during optimization (None: the model's default)


PRESETS: dict[str, Preset] = {
    # Proves the pipeline in minutes on 2 cores with the 135M embedded model: tiny sets, 3 candidates (DSPy keeps
    # 3 fixed demo sets - none, labelled only, one teacher-bootstrapped - so 3 is the least that bootstraps), 2 trials,
    # no data/program-aware proposer calls.
    "quick": Preset("quick", train_size=6, dev_size=4,
                    mipro=dict(auto=None, num_candidates=3, max_bootstrapped_demos=1, max_labeled_demos=1),
                    mipro_compile=dict(num_trials=2, minibatch=False, program_aware_proposer=False,
                                       data_aware_proposer=False, fewshot_aware_proposer=False,
                                       view_data_batch_size=3),
                    bootstrap_rs=dict(max_bootstrapped_demos=1, max_labeled_demos=1, num_candidate_programs=2),
                    gepa=dict(max_metric_calls=16, reflection_minibatch_size=2), max_tokens=192),
    # The original study's MIPROv2 configuration, exactly (train 50 -> 40 optimizer-train / 10 dev).
    "study": Preset("study", train_size=40, dev_size=10,
                    mipro=dict(auto=None, num_candidates=7, max_bootstrapped_demos=3, max_labeled_demos=5,
                               init_temperature=1.0),
                    mipro_compile=dict(num_trials=10, minibatch=True, minibatch_size=25),
                    bootstrap_rs=dict(max_bootstrapped_demos=4, max_labeled_demos=4, num_candidate_programs=10),
                    gepa=dict(auto="light")),
    # DSPy's light budget.
    "standard": Preset("standard", train_size=100, dev_size=50,
                       mipro=dict(auto="light", max_bootstrapped_demos=3, max_labeled_demos=5),
                       mipro_compile=dict(),
                       bootstrap_rs=dict(max_bootstrapped_demos=4, max_labeled_demos=4, num_candidate_programs=6),
                       gepa=dict(auto="light")),
    # DSPy's medium budget.
    "full": Preset("full", train_size=300, dev_size=100,
                   mipro=dict(auto="medium", max_bootstrapped_demos=3, max_labeled_demos=5),
                   mipro_compile=dict(),
                   bootstrap_rs=dict(max_bootstrapped_demos=4, max_labeled_demos=4, num_candidate_programs=16),
                   gepa=dict(auto="medium")),
}


def budget_sha(p: Preset) -> str:
    """Identity of a preset's settings: a unit optimized under other settings of the same name is not reused."""
    import hashlib
    import json
    from dataclasses import asdict

    return hashlib.sha256(json.dumps(asdict(p), sort_keys=True, default=str).encode()).hexdigest()[:12]


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UserError(f"--preset must be one of {', '.join(PRESETS)}, not '{name}'")
    return PRESETS[name]


# ---- data for optimization --------------------------------------------------------------------------------

def optimization_sets(task: Task, data: TaskData, train_size: int, dev_size: int) -> tuple[list, list]:
    """Optimizer-train and dev sets, both from the train split; the eval split never reaches an optimizer."""
    train, dev = optimization_splits(data, train_size, dev_size)
    if len(train) < 2 or not dev:
        raise UserError(f"task '{task.key}': the train split has {len(data.train)} examples, too few for "
                        f"{dev_size} dev + optimizer-train examples (lower --dev-size/--train-size)")
    assert_disjoint_from_eval(task, data.eval, train + dev)
    return train, dev


def assert_disjoint_from_eval(task: Task, eval_examples: list[TaskExample], used: list[TaskExample]) -> None:
    """Hard stop if any eval example (by id or by normalised input) is about to be used for optimization."""
    eval_ids = {ex.id for ex in eval_examples}
    eval_keys = {task.dedup_key(ex) for ex in eval_examples}
    leaked = [ex.id for ex in used if ex.id in eval_ids or task.dedup_key(ex) in eval_keys]
    if leaked:
        raise RuntimeError(f"eval examples reached the optimizer for task {task.key}: {leaked[:5]}")


# ---- accounting ---------------------------------------------------------------------------------------------

def meter_delta(before: dict[str, dict[str, int]], sessions: list[ModelSession]) -> dict[str, Any]:
    """Calls, tokens and $ per model key (student and teacher apart) since `before`, and totals."""
    per_model: dict[str, dict[str, Any]] = {}
    for session in {s.spec.key: s for s in sessions}.values():
        now = session.lm.meter.snapshot()
        then = before[session.spec.key]
        row = {k: now[k] - then[k] for k in now}
        row["cost_usd"] = round(session.spec.cost_usd(row["input_tokens"], row["output_tokens"]), 6)
        per_model[session.spec.key] = row
    totals = {k: sum(r[k] for r in per_model.values()) for k in ("lm_calls", "input_tokens", "output_tokens",
                                                                   "cache_hits")}
    totals["cost_usd"] = round(sum(r["cost_usd"] for r in per_model.values()), 6)
    return {"by_model": per_model, **totals}


# ---- the arms -----------------------------------------------------------------------------------------------

def gepa_metric(task: Task):
    """GEPA wants feedback text with the score: say what was expected."""
    from dspy.teleprompt.gepa.gepa import ScoreWithFeedback

    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        score = task.metric(gold, pred)
        expected = gold.get("ia_gold")
        feedback = "Correct." if score >= 1.0 else f"Score {score:.2f}. The expected answer was: {expected!r}."
        return ScoreWithFeedback(score=score, feedback=feedback)

    return metric


def compile_arm(arm: str, task: Task, trainset: list[dspy.Example], student: ModelSession, teacher: ModelSession,
                p: Preset, seed: int) -> dspy.Module:
    """Optimize the task's program with one arm; the teacher bootstraps demos and proposes instructions."""
    threads = student.concurrency
    if arm == "cot_zero_shot":
        return task.program(chain_of_thought=True)
    program = task.program()
    trainset = list(trainset)
    # The seed also orders the trainset: for arms without their own seed it is what makes seeds differ.
    random.Random(seed).shuffle(trainset)
    if arm == "mipro_v2":
        opt = dspy.MIPROv2(metric=task.metric, prompt_model=teacher.lm, task_model=student.lm,
                           teacher_settings={"lm": teacher.lm}, num_threads=threads, seed=seed, verbose=False,
                           track_stats=False, **p.mipro)
        return opt.compile(program, trainset=trainset, seed=seed, **p.mipro_compile)
    if arm == "bootstrap_rs":
        opt = dspy.BootstrapFewShotWithRandomSearch(metric=task.metric, teacher_settings={"lm": teacher.lm},
                                                    num_threads=threads, **p.bootstrap_rs)
        cut = max(1, len(trainset) // 2)  # its valset: candidates are ranked on examples they were not built from
        return opt.compile(program, trainset=trainset[:cut], valset=trainset[cut:] or trainset)
    if arm == "gepa":
        opt = dspy.GEPA(metric=gepa_metric(task), reflection_lm=teacher.lm, num_threads=threads, seed=seed,
                        track_stats=False, **p.gepa)
        cut = max(1, len(trainset) // 2)
        return opt.compile(program, trainset=trainset[:cut], valset=trainset[cut:] or trainset)
    raise UserError(f"--optimizer must be one of {', '.join(ARMS)}, not '{arm}'")


def projected_calls(arm: str, task: Task, p: Preset, n_train: int, n_dev: int, n_seeds: int) -> dict[str, int]:
    """LM calls a unit will make, by role, using DSPy's own MIPROv2 projection where it has one."""
    program = task.program()
    dev_calls = (n_seeds + 1) * n_dev  # every seed's candidate plus the unoptimized baseline, on dev
    if arm == "cot_zero_shot":
        return {"teacher": 0, "student": n_dev * 2, "total": n_dev * 2}
    if arm == "mipro_v2":
        placeholder = dspy.LM("openai/projection-only")  # never called: MIPROv2 insists on models to exist
        opt = dspy.MIPROv2(metric=task.metric, prompt_model=placeholder, task_model=placeholder, **p.mipro)
        opt._set_random_seeds(0)
        valset_size = min(1000, max(1, int(n_train * 0.80)))
        zeroshot = not (opt.max_bootstrapped_demos or opt.max_labeled_demos)
        trials = p.mipro_compile.get("num_trials")
        minibatch = p.mipro_compile.get("minibatch", True)
        n_fewshot = n_instr = opt.num_candidates
        if opt.auto:
            from dspy.teleprompt.mipro_optimizer_v2 import AUTO_RUN_SETTINGS, MIN_MINIBATCH_SIZE

            s = AUTO_RUN_SETTINGS[opt.auto]
            valset_size = min(valset_size, s["val_size"])
            minibatch = valset_size > MIN_MINIBATCH_SIZE
            n_fewshot = s["n"]
            n_instr = s["n"] if zeroshot else int(s["n"] * 0.5)
            trials = opt._set_num_trials_from_num_candidates(program, zeroshot, s["n"])
        mb_size = min(p.mipro_compile.get("minibatch_size", 35), valset_size)
        aware = p.mipro_compile.get("program_aware_proposer", True)
        prompt_line, task_line = opt._estimate_lm_calls(program, trials, minibatch, mb_size,
                                                        p.mipro_compile.get("minibatch_full_eval_steps", 5),
                                                        [None] * valset_size, aware, n_instr)
        prompt = _first_total(prompt_line)
        task_calls = _first_total(task_line)
        # teacher traces over the train part, one per predictor (upper bound)
        bootstrap = n_fewshot * max(0, n_train - valset_size) * len(program.predictors())
        teacher = n_seeds * (prompt + bootstrap)
        student = n_seeds * task_calls + dev_calls
        return {"teacher": teacher, "student": student, "total": teacher + student}
    if arm == "bootstrap_rs":
        cands = p.bootstrap_rs["num_candidate_programs"] + 3
        half = max(1, n_train // 2)
        teacher = n_seeds * cands * half
        student = n_seeds * cands * (n_train - half) + dev_calls
        return {"teacher": teacher, "student": student, "total": teacher + student}
    budget = p.gepa.get("max_metric_calls") or 20 * n_train
    teacher = n_seeds * max(1, budget // 4)
    student = n_seeds * budget + dev_calls
    return {"teacher": teacher, "student": student, "total": teacher + student}


def _first_total(line: str) -> int:
    numbers = re.findall(r"=\s*(?:\x1b\[[0-9;]*m)*(\d+)", line)
    return int(numbers[-1]) if numbers else 0


# ---- one unit: (model, task, optimizer) over seeds ------------------------------------------------------------

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
    seeds: list[dict[str, Any]] = field(default_factory=list)


def _seed_dir(results_dir: Path, model: str, task: str, arm: str) -> Path:
    return program_path(results_dir, model, task, arm).parent / ".seeds" / f"{model}_{task}_{arm}"


def _dev_score(program: dspy.Module, task: Task, dev: list[TaskExample], session: ModelSession, label: str) -> float:
    records = evaluate(program, dev, task, session.spec, session.lm, session.adapter,
                       EngineSettings(concurrency=session.concurrency, progress=True, label=label), label, "dev",
                       lambda r: None)
    from src.units import record_score

    return task.aggregate([record_score(r) for r in records])


def unit_header(arm: str, task: Task, data: TaskData, student: ModelSession, teacher: ModelSession, p: Preset,
                train: list[TaskExample], dev: list[TaskExample]) -> dict[str, Any]:
    import importlib.metadata as md

    from src.tasks.data import fingerprint
    from src.units import program_sha

    return {"model": student.spec.key, "task": task.key, "optimizer": arm, "teacher": teacher.spec.key,
            "preset": p.name, "budget": budget_sha(p), "adapter": student.adapter_name,
            "data_source": data.provenance["source"],
            "train_fingerprint": fingerprint(train), "dev_fingerprint": fingerprint(dev),
            "program_sha": program_sha(task.program()), "dspy": md.version("dspy")}


def run_opt_unit(arm: str, task: Task, data: TaskData, student: ModelSession, teacher: ModelSession, p: Preset,
                 seeds: list[int], results_dir: Path, train_size: int, dev_size: int, force: bool) -> OptUnitResult:
    """Run every unfinished seed, record each (failures included), keep the best on dev. Idempotent."""
    started = time.time()
    train, dev = optimization_sets(task, data, train_size, dev_size)
    header = unit_header(arm, task, data, student, teacher, p, train, dev)
    final = program_path(results_dir, student.spec.key, task.key, arm)
    seed_dir = _seed_dir(results_dir, student.spec.key, task.key, arm)
    if arm == "cot_zero_shot":
        seeds = [0]  # nothing is searched: one "seed" is the whole arm

    old = read_json(sidecar_path(final)) if sidecar_path(final).is_file() else None
    if old and old.get("header") != header and not force:
        diff = [k for k in header if old.get("header", {}).get(k) != header[k]]
        raise UserError(f"{final}: existing program was optimized with different {', '.join(diff)}; pass --force to "
                        f"redo it (the old files are archived) or choose another --results-dir")
    if force:
        from src.results import archive

        archive([final, sidecar_path(final), seed_dir], results_dir)
    elif old and old.get("header") == header and old.get("status") == "ok" and final.is_file() and \
            sorted(s["seed"] for s in old.get("seeds", [])) == sorted(seeds):
        return OptUnitResult(student.spec.key, task.key, arm, "reused", final, old.get("chosen_seed"),
                             old.get("dev_score"), old.get("baseline_dev_score"),
                             old.get("optimization_cost", {}).get("lm_calls", 0), 0.0, seeds=old.get("seeds", []))
    seed_dir.mkdir(parents=True, exist_ok=True)

    if student.spec.key == teacher.spec.key:
        print(f"  warning: no --teacher: {student.spec.key} teaches itself (bootstraps its own demos and proposes "
              f"its own instructions)", file=sys.stderr)
    baseline_file = seed_dir / "baseline_dev.json"
    base = read_json(baseline_file) if baseline_file.is_file() else None
    if not base or base.get("header") != header:
        score = _dev_score(task.program(), task, dev, student, f"{student.spec.key}/{task.key} dev baseline")
        base = {"header": header, "dev_score": score}
        write_json(baseline_file, base)

    seed_results = []
    for seed in seeds:
        seed_results.append(_run_seed(arm, task, train, dev, student, teacher, p, seed, seed_dir, header))

    ok = [s for s in seed_results if s["status"] == "ok"]
    cost = {k: sum(s.get(k) or 0 for s in seed_results) for k in ("lm_calls", "input_tokens", "output_tokens",
                                                                 "cache_hits")}
    cost["cost_usd"] = round(sum(s.get("cost_usd") or 0 for s in seed_results), 6)
    cost["wall_s"] = round(sum(s.get("wall_s") or 0 for s in seed_results), 2)
    side: dict[str, Any] = {
        "model": student.spec.key, "task": task.key, "optimizer": arm, "teacher": teacher.spec.key,
        "teacher_is_student": teacher.spec.key == student.spec.key, "preset": p.name,
        "budgets": {"train_size": len(train), "dev_size": len(dev), "mipro": p.mipro, "mipro_compile": p.mipro_compile,
                    "bootstrap_rs": p.bootstrap_rs, "gepa": p.gepa, "max_tokens": p.max_tokens},
        "adapter": student.adapter_name, "seeds": seed_results, "baseline_dev_score": base["dev_score"],
        "optimization_cost": cost, "header": header, "data": data.provenance, "run": run_context(),
    }
    if not ok:
        side.update(status="failed", reason="; ".join(f"seed {s['seed']}: {s['error']}" for s in seed_results))
        write_json(sidecar_path(final), side)
        return OptUnitResult(student.spec.key, task.key, arm, "failed", None, None, None, base["dev_score"],
                             cost["lm_calls"], time.time() - started, side["reason"], seed_results)
    # Best of the seeds on dev; ties go to the earliest seed, so the choice is deterministic.
    best = max(ok, key=lambda s: (s["dev_score"], -seeds.index(s["seed"])))
    shutil.copyfile(seed_dir / f"seed{best['seed']}.json", final)
    side.update(status="ok", chosen_seed=best["seed"], dev_score=best["dev_score"], predictors=best["predictors"],
                n_demos_total=best["n_demos"], module=best["module"], program_file=str(final),
                program_sha256=file_sha256(final), versions=side["run"]["versions"])
    write_json(sidecar_path(final), side)
    return OptUnitResult(student.spec.key, task.key, arm, "ran", final, best["seed"], best["dev_score"],
                         base["dev_score"], cost["lm_calls"], time.time() - started, seeds=seed_results)


def _run_seed(arm: str, task: Task, train: list[TaskExample], dev: list[TaskExample], student: ModelSession,
              teacher: ModelSession, p: Preset, seed: int, seed_dir: Path, header: dict[str, Any]) -> dict[str, Any]:
    """One seed: compile, score on dev, save. A failure is recorded, never raised."""
    meta_file = seed_dir / f"seed{seed}.meta.json"
    if meta_file.is_file():
        prior = read_json(meta_file)
        if prior.get("header") == header and (prior["status"] == "failed" or (seed_dir / f"seed{seed}.json").is_file()):
            print(f"  seed {seed}: reused ({prior['status']}, dev={prior.get('dev_score')})", file=sys.stderr)
            return prior["result"]
    t0 = time.time()
    before = {s.spec.key: s.lm.meter.snapshot() for s in (student, teacher)}
    result: dict[str, Any] = {"seed": seed, "status": "ok", "error": None}
    print(f"  seed {seed}: optimizing {student.spec.key}/{task.key} with {arm} (teacher {teacher.spec.key})",
          file=sys.stderr, flush=True)
    with dspy.context(lm=student.lm, adapter=student.adapter):
        try:
            program = compile_arm(arm, task, [ex.to_dspy() for ex in train], student, teacher, p, seed)
            result["dev_score"] = _dev_score(program, task, dev, student, f"{student.spec.key}/{task.key} seed {seed}")
            predictors = describe_program(program)
            result.update(predictors=predictors, n_demos=sum(v["n_demos"] for v in predictors.values()),
                          module=type(program).__name__)
            program.save(str(seed_dir / f"seed{seed}.json"))
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - a proposer/bootstrap failure is an event of this seed
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            result.update(status="failed", error=f"{type(exc).__name__}: {first}"[:500], dev_score=None)
    result.update(meter_delta(before, [student, teacher]))
    result["wall_s"] = round(time.time() - t0, 2)
    state = f"dev={result['dev_score']:.3f}" if result["status"] == "ok" else f"FAILED ({result['error']})"
    print(f"  seed {seed}: {state}, {result['lm_calls']} LM calls, {result['wall_s']:.1f}s", file=sys.stderr, flush=True)
    write_json(meta_file, {"header": header, "status": result["status"], "dev_score": result.get("dev_score"),
                           "result": result})
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

"""A study file as a unit graph: baseline (model, task) for students and references; optimize as a dev-baseline
unit, one unit per seed and a select-best unit per (model, task); optimized eval (model, task); the later studies
the study configures (demo curves, tipping-point cells: src.scheduling.later_studies); consolidate.

Each unit calls the same library functions the stage runners call (src.evaluation.matrix.run_eval_unit,
src.optimization.search's prepare / run_seed / finish, the golden consolidation), on the same files under the same
checkpoint rule, so a study run by the scheduler leaves the results running the stages one after another leaves.
Units that run beside others of the same model take a session of their own (Sessions.unit_session): their meters
and endpoint counts are theirs alone; their endpoint budgets are shared.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any

from src.backends.adapters import build_adapter, choose_adapter
from src.errors import UserError
from src.evaluation.engine import example_calls
from src.evaluation.matrix import DataCache, run_eval_unit
from src.optimization.arms import get_arm
from src.optimization.presets import preset
from src.optimization.programs import saved_program
from src.optimization.search import OptPlan, finish_opt_unit, prepare_opt_unit, run_seed, stored_seed
from src.results.naming import (arm_for_optimizer, dev_baseline, meta_path, prefix_for, program_path, result_csv,
                                seed_dir, seed_meta, seed_program, sidecar_path)
from src.results.provenance import run_context
from src.results.schema import DevBaseline, ProgramMeta, SeedMeta, UnitMeta
from src.scheduling.graph import Unit, UnitGraph, UnitResult
from src.scheduling.later_studies import demo_curve_units, tipping_point_units
from src.scheduling.settings import StudySettings, spread
from src.tasks.bounds import bound_for

if TYPE_CHECKING:
    from src.backends.session import Sessions
    from src.tasks.base import Task

__all__ = ["StudySettings", "build_graph", "stage_findings"]  # StudySettings lived here; its users import it from here


def build_graph(s: StudySettings, sessions: Sessions, data: DataCache, ctx: dict[str, Any] | None = None) -> UnitGraph:
    """The study's units; nothing runs until an executor runs them."""
    graph = UnitGraph()
    ctx = ctx if ctx is not None else run_context()
    if "baseline" in s.stages:
        for stage, models, limit in (("baseline", s.students, s.limit),
                                     ("baseline (references)", s.references, s.reference_limit)):
            for m in models:
                for task in s.tasks:
                    graph.add(_eval_unit(stage, "baseline", m, task, limit, s, sessions, data, ctx))
    if s.students and "optimize" in s.stages:
        for m in s.students:
            for task in s.tasks:
                _optimize_units(graph, m, task, s, sessions, data)
    arm = arm_for_optimizer(s.optimizer)
    if s.students and "eval" in s.stages:
        for m in s.students:
            for task in s.tasks:
                needs = (f"select {m}/{task.key}",) if "optimize" in s.stages else ()
                graph.add(_eval_unit("eval", arm, m, task, s.limit, s, sessions, data, ctx, needs))
    if s.students and "demo_curves" in s.stages and s.demo_curves is not None:
        demo_curve_units(graph, s, sessions, data, ctx)
    if "tipping_point" in s.stages and s.tipping_point is not None:
        tipping_point_units(graph, s, sessions, data, ctx)
    if "consolidate" in s.stages and s.consolidate_opts is not None:
        graph.add(Unit("consolidate", "consolidate", lambda: _consolidate(s), after=tuple(graph.units)))
    return graph


def _eval_unit(stage: str, arm: str, model: str, task: Task, limit: int | None, s: StudySettings,
               sessions: Sessions, data: DataCache, ctx: dict[str, Any], requires: tuple[str, ...] = ()) -> Unit:
    spec = sessions.spec(model)
    try:  # the data first: some programs are built from it (classification's label names)
        n = len(data.get(task).eval_subset(limit))
        adapter = build_adapter(choose_adapter(spec, s.adapter), spec)  # no LM is made (nor a server started) here
        calls = n * example_calls(task.program(), adapter) * s.repeats  # every attempt of --repeats is a request
    except UserError:  # data that cannot load: the unit itself reports it when it runs
        calls = 0

    def program_for(t: Task, sp: Any) -> tuple[Any, dict[str, Any]]:
        if arm == "baseline":
            return t.program(), {"kind": "baseline", "module": "ChainOfThought" if t.chain_of_thought else "Predict"}
        return saved_program(t, sp.key, s.results_dir, s.optimizer)

    def run() -> UnitResult:
        adapter = s.adapter
        if arm != "baseline" and adapter is None:  # the optimization's adapter, as the optimized-eval stage does
            side = ProgramMeta.read_optional(sidecar_path(program_path(s.results_dir, model, task.key, s.optimizer)))
            adapter = side.adapter if side is not None else None
        def open_session(td: Any, program: Any) -> Any:  # the stage runner's session: the task's bound applies
            return sessions.unit_session(model, adapter=adapter, bound=bound_for(td.provenance, program))

        r = run_eval_unit(arm, spec, task, data, limit, program_for, open_session, s.results_dir, s.force, ctx,
                          s.evaluator, repeats=s.repeats, progress=False)  # the study's progress view instead
        return UnitResult(r.status, r.message, str(r.extra.get("cause") or r.message), r.wall_s)

    label = "baseline" if arm == "baseline" else "eval"
    return Unit(f"{label} {model}/{task.key}", stage, run, requires=requires, calls=spread(sessions, model, calls),
                model=model, task=task.key, label=f"{model} x {task.key}")


def _optimize_units(graph: UnitGraph, model: str, task: Task, s: StudySettings, sessions: Sessions,
                    data: DataCache) -> None:
    budget = preset(s.preset)
    arm = get_arm(s.optimizer)
    train_size, dev_size = s.train_size or budget.train_size, s.dev_size or budget.dev_size
    seeds = s.seeds if arm.seeded else [0]
    teacher = s.teacher or model
    n_train = min(train_size, max(0, len(data.get(task).train) - dev_size))
    per_seed = arm.projected(task, budget, n_train, dev_size, 1)
    holder: dict[str, OptPlan] = {}
    lock = threading.Lock()
    base = f"{model}/{task.key}"
    shown = f"{model} / {task.key}"  # as the evaluation units' console lines name theirs

    def sessions_for() -> tuple[Any, Any]:
        # as the optimize runner: the student under the task's bound; a student that teaches itself proposes
        # instructions under the budget's cap, never under the task's bound
        bound = bound_for(data.get(task).provenance, task.program(arm.chain_of_thought))
        student = sessions.unit_session(model, max_tokens=budget.max_tokens, bound=bound)
        if s.teacher:
            return student, sessions.unit_session(teacher)
        own_teacher = sessions.unit_session(model, max_tokens=budget.max_tokens)
        own_teacher.lm.meter = student.lm.meter  # one model, one count (as Sessions shares a model's meter)
        return student, own_teacher

    def prepare() -> UnitResult:
        student, teacher_s = sessions_for()
        plan = prepare_opt_unit(s.optimizer, task, data.get(task), student, teacher_s, budget, seeds,
                                s.results_dir, train_size, dev_size, s.force)
        with lock:
            holder["plan"] = plan
        state = "reused" if plan.reused is not None else f"dev={_score(plan.baseline_dev_score)} unoptimized"
        _say(f"[optimize] {shown} dev baseline: {state}")
        return UnitResult("reused" if plan.reused is not None else "ran")

    def seed_unit(seed: int) -> UnitResult:
        plan = holder["plan"]
        if plan.reused is not None:
            return UnitResult("reused")
        prior = stored_seed(plan, seed)  # this seed's checkpoint under this unit's identity (the runner's rule)
        if prior is not None and (prior.status == "failed" or seed_program(plan.seeds_at, seed).is_file()):
            return UnitResult("reused")
        result = run_seed(plan, *sessions_for(), budget, seed, s.results_dir)
        if result.status == "failed":
            return UnitResult("failed", f"seed {seed}: {result.error}", f"optimization seed failed: {result.error}")
        return UnitResult("ran")

    def select() -> UnitResult:
        plan = holder["plan"]
        student, teacher_s = sessions_for()
        results = [stored_seed(plan, seed) for seed in plan.seeds] if plan.reused is None else []
        if any(r is None for r in results):
            missing = [seed for seed, r in zip(plan.seeds, results) if r is None]
            return UnitResult("failed", f"{base}: seed(s) {missing} left no result", "a seed left no result")
        r = finish_opt_unit(plan, student, teacher_s, budget, results)  # type: ignore[arg-type]
        if r.status == "failed":
            _say(f"[optimize] {shown}: FAILED: every seed failed")
            return UnitResult("failed", f"{base}: optimization failed for every seed", r.message)
        if r.status == "ran":
            _say(f"[optimize] {shown}: chose seed {r.chosen_seed} (dev {_score(r.dev_score)}; unoptimized "
                 f"{_score(r.baseline_dev_score)})")
        return UnitResult(r.status)

    prep = graph.add(Unit(f"optimize {base}: dev baseline", "optimize", prepare,
                          calls=spread(sessions, model, dev_size), model=model, task=task.key,
                          label=f"{model} x {task.key} dev baseline"))
    seed_ids = []
    for seed in seeds:
        calls = spread(sessions, model, max(0, per_seed.student - dev_size))
        spread(sessions, teacher, per_seed.teacher, calls)
        u = graph.add(Unit(f"optimize {base} seed {seed}", "optimize", lambda seed=seed: seed_unit(seed),
                           requires=(prep.id,), calls=calls, model=model, task=task.key,
                           label=f"{model} x {task.key} seed {seed}"))
        seed_ids.append(u.id)
    graph.add(Unit(f"select {base}", "select", select, requires=(prep.id,), after=tuple(seed_ids),
                   model=model, task=task.key, label=f"{model} x {task.key}"))


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _say(line: str) -> None:
    """A unit's one console line, at its end (written at once: units end on many threads at a time)."""
    print(line + "\n", end="", file=sys.stderr, flush=True)


def stage_findings(s: StudySettings, graph: UnitGraph, sessions: Sessions) -> dict[str, dict[str, int]]:
    """Per stage, from the result files of the graph's units (what ran now and what was reused): examples scored,
    parse failures and backend errors - an evaluation unit's sidecar, an optimization's dev scoring (its dev baseline
    and every seed's dev score; the optimizer's own trial calls leave no records) - and failed seeds."""
    out: dict[str, dict[str, int]] = {}
    arm = arm_for_optimizer(s.optimizer)
    for u in graph.units.values():
        if not u.model or u.stage in ("select", "consolidate"):
            continue
        f = out.setdefault(u.stage, {"examples": 0, "parse_failures": 0, "errors": 0, "failed_seeds": 0})
        if u.results is not None:  # a unit that names its evaluation files (the later studies' conditions, cells)
            for csv in u.results():
                _count(f, UnitMeta.read_optional(meta_path(csv)))
            continue
        if u.stage == "optimize":
            seeds_at = seed_dir(s.results_dir, u.model, u.task, s.optimizer)
            if u.id.endswith(": dev baseline"):
                base = DevBaseline.read_optional(dev_baseline(seeds_at))
                extra = base.extra if base is not None else {}
            else:
                meta = SeedMeta.read_optional(seed_meta(seeds_at, int(u.id.rsplit(" ", 1)[1])))
                extra = meta.result.extra if meta is not None and meta.result is not None else {}
                f["failed_seeds"] += meta is not None and meta.status == "failed"
            f["examples"] += extra.get("dev_examples", 0)
            f["parse_failures"] += extra.get("dev_parse_failures", 0)
            f["errors"] += extra.get("dev_errors", 0)
            continue
        spec = sessions.spec(u.model)
        csv = result_csv(s.results_dir, prefix_for(spec), "baseline" if u.stage.startswith("baseline") else arm,
                         u.task, u.model)
        _count(f, UnitMeta.read_optional(meta_path(csv)))
    return out


def _count(findings: dict[str, int], meta: UnitMeta | None) -> None:
    if meta is not None:
        findings["examples"] += meta.summary.n
        findings["parse_failures"] += meta.summary.parse_failures
        findings["errors"] += meta.summary.errors


def _consolidate(s: StudySettings) -> UnitResult:
    from src.consolidation import golden
    from src.tasks import get_task

    config = s.config
    res = golden.consolidate(s.consolidate_opts, config, lambda key: get_task(key, config))
    print(f"wrote {s.consolidate_opts.out / 'SUMMARY.md'} and {s.consolidate_opts.out / 'report.html'} "
          f"({len(res.arms)} arms, {len(res.deltas)} deltas)")
    return UnitResult("ran")

"""./run_experiment.sh's default executor: the study file and flags as a unit graph (src.scheduling.study), run
in this process by the study scheduler, its schedule printed for --dry-run, its units summarised per stage."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from src.backends.session import Sessions, SessionOptions
from src.consolidation.analysis import Options
from src.evaluation.matrix import DataCache
from src.optimization.presets import preset
from src.optimization.search import quiet_optimizer_logs
from src.registry import Config
from src.registry.experiments import Experiment
from src.results.provenance import run_context
from src.scheduling.graph import UnitGraph, UnitResult
from src.scheduling.local import LocalExecutor
from src.scheduling.progress import StudyProgress, render
from src.scheduling.study import StudySettings, build_graph, stage_findings
from src.tasks import get_task, resolve_task_keys


def with_endpoint_overrides(config: Config, exp: Experiment) -> Config:
    """The study file's `endpoint_concurrency` (model key -> requests in flight per endpoint) over models.json's."""
    for key, n in exp.endpoint_concurrency.items():
        config = config.with_model(replace(config.model(key), endpoint_concurrency=n))
    return config


def tipping_task_keys(exp: Experiment, config: Config) -> list[str]:
    """The tipping point's tasks: its own list, else the study's."""
    return resolve_task_keys(exp.tipping_point.tasks or exp.tasks, config) if exp.tipping_point else []


def study_settings(exp: Experiment, args: Any, config: Config, results_dir: Path, stages: list[str]) -> StudySettings:
    limit = args.limit if args.limit is not None else exp.limit
    ref_limit = args.limit if args.limit is not None else (exp.reference_limit or limit)
    later = "tipping_point" in stages
    return StudySettings(
        students=list(exp.students), references=list(exp.references), teacher=exp.teacher,
        tasks=[get_task(k, config) for k in resolve_task_keys(exp.tasks, config)],
        data_mode=args.data if args.data and args.data != "auto" else exp.data, results_dir=results_dir,
        limit=limit or None, reference_limit=ref_limit or None, optimizer=exp.optimizer, preset=exp.preset,
        seeds=list(exp.seeds), train_size=exp.train_size, dev_size=exp.dev_size, adapter=args.adapter or exp.adapter,
        force=args.force, stages=stages,
        consolidate_opts=Options(results_dir, results_dir / "golden") if "consolidate" in stages else None,
        config=config, repeats=args.repeats or exp.repeats,
        demo_curves=exp.demo_curves if "demo_curves" in stages else None,
        tipping_point=exp.tipping_point if later else None,
        tipping_tasks=[get_task(k, config) for k in tipping_task_keys(exp, config)] if later else [])


def make_sessions(config: Config, exp: Experiment, args: Any) -> Sessions:
    return Sessions(config, SessionOptions(adapter=args.adapter or exp.adapter,
                                           concurrency=args.concurrency or exp.concurrency or None,
                                           cache=not args.no_cache,
                                           max_cost=args.max_cost if args.max_cost is not None else exp.max_cost))


def build(settings: StudySettings, sessions: Sessions) -> tuple[UnitGraph, DataCache]:
    data = DataCache(sessions.config, settings.data_mode, settings.tasks)
    return build_graph(settings, sessions, data, run_context()), data


def print_schedule(graph: UnitGraph, data: DataCache) -> None:
    """The units by stage (with what each waits for) and the projected LM calls per endpoint."""
    print(f"\ndry run: the study scheduler would run {len(graph.units)} units (data {data.source.describe()}); a "
          f"unit starts when the units it needs have finished, and each endpoint admits its budget of requests:")
    for stage in graph.stages():
        units = [u for u in graph.units.values() if u.stage == stage]
        print(f"  stage {stage}: {len(units)} unit(s)")
        for u in units:
            needs = f"  (after {', '.join(u.deps)})" if u.deps and u.stage != "consolidate" else ""
            if u.stage == "consolidate":
                needs = "  (after every other unit)"
            calls = ", ".join(f"{n}: ~{c}" for n, c in u.calls.items())
            print(f"    {u.id}{'  calls ' + calls if calls else ''}{needs}")
    print("projected LM calls per endpoint (upper bounds; cached responses cost none):")
    for name, n in sorted(graph.projected_calls().items()):
        print(f"  {name}: {n}")


def run_local(graph: UnitGraph, settings: StudySettings, sessions: Sessions, *, max_units: int,
              report_every_s: float = 30.0, executor: Any = None) -> list[dict[str, Any]]:
    """Preflight, run the graph, and return one summary row per stage (as the stage executor does)."""
    students, others = settings.students, settings.references + ([settings.teacher] if settings.teacher else [])
    budget = preset(settings.preset)
    sessions.preflight(students + others, settings.adapter,
                       max_tokens=budget.max_tokens if "optimize" in settings.stages else None, capped=students)
    tp = settings.tipping_point
    if tp is not None:  # as the tipping-point command: its students under the preset's generation cap
        sessions.preflight(tp.models + ([tp.teacher] if tp.teacher else []), settings.adapter,
                           max_tokens=preset(tp.preset).max_tokens, capped=tp.models)
    quiet_optimizer_logs(False)
    progress = StudyProgress(graph)
    t0 = time.time()
    executor = executor or LocalExecutor(max_units=max_units, report_every_s=report_every_s)
    results = executor.run(graph, progress)
    print(render(progress.snapshot()), file=sys.stderr, flush=True)
    rows = stage_rows(graph, results, time.time() - t0)
    findings = stage_findings(settings, graph, sessions)
    for row in rows:
        if row["stage"] in findings:
            row["findings"] = findings[row["stage"]]
    return rows


def stage_rows(graph: UnitGraph, results: dict[str, UnitResult], wall_s: float) -> list[dict[str, Any]]:
    rows = []
    for stage in graph.stages():
        units = [{"unit": u.label or u.id, "status": results[u.id].status, "message": results[u.id].message}
                 for u in graph.units.values() if u.stage == stage and u.id in results]
        failed = any(x["status"] == "failed" for x in units)
        span = sum(results[u.id].wall_s for u in graph.units.values() if u.stage == stage and u.id in results)
        rows.append({"stage": stage, "exit": 1 if failed else 0, "wall_s": span, "units": units})
    return rows

"""A model x task matrix of evaluation units: the loop shared by the baseline, optimized-eval and single-run commands."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dspy

from src.backends.session import Sessions, SessionOptions
from src.errors import UserError
from src.evaluation.unit import EvalUnit, UnitSummary, run_unit
from src.results.ledger import ledger_append
from src.results.naming import prefix_for, result_csv
from src.results.provenance import run_context
from src.tasks import get_task
from src.tasks.bounds import bound_for
from src.tasks.sources import resolve_source
from src.tasks.splits import TaskData, load_task_data

if TYPE_CHECKING:
    from src.registry import Config, ModelSpec
    from src.tasks.base import Task

# (task, model spec) -> (program, info for the sidecar), or None to skip that pair with a reason
ProgramFor = Callable[["Task", "ModelSpec"], "tuple[dspy.Module, dict[str, Any]]"]


@dataclass
class MatrixRequest:
    arm: str
    model_keys: list[str]
    task_keys: list[str]
    data_mode: str
    results_dir: Path
    limit: int | None
    concurrency: int | None
    adapter: str | None
    force: bool
    dry_run: bool
    cache: bool


class DataCache:
    """Each task's data is loaded once per command, whatever the number of models."""

    def __init__(self, config: Config, mode: str):
        self.config = config
        self.source = resolve_source(mode, config)
        self._data: dict[str, TaskData] = {}

    def get(self, task: Task) -> TaskData:
        if task.key not in self._data:
            self._data[task.key] = load_task_data(task, self.source)
        return self._data[task.key]


def evaluate_matrix(req: MatrixRequest, config: Config, program_for: ProgramFor,
                    sessions: Sessions | None = None) -> list[UnitSummary]:
    """Preflight every model, then run every (model, task) unit; one failed unit never stops the others."""
    sessions = sessions or Sessions(config, SessionOptions(adapter=req.adapter, concurrency=req.concurrency,
                                                           cache=req.cache))
    data = DataCache(config, req.data_mode)
    tasks = [get_task(k, config) for k in req.task_keys]
    specs = [sessions.spec(k) for k in req.model_keys]
    if req.dry_run:
        _print_plan(req, specs, tasks, data.source.describe())
        return []
    sessions.preflight(req.model_keys, req.adapter)
    ctx = run_context()
    summaries: list[UnitSummary] = []
    for spec in specs:
        for task in tasks:
            csv = result_csv(req.results_dir, prefix_for(spec), req.arm, task.key, spec.key)
            t0 = time.time()
            print(f"[{req.arm}] {spec.key} / {task.key}: started", file=sys.stderr, flush=True)
            try:
                td = data.get(task)
                program, info = program_for(task, spec)
                session = sessions.for_task(spec.key, bound_for(td.provenance, program), adapter=req.adapter)
                unit = EvalUnit(req.arm, task, td, td.eval_subset(req.limit), program, csv, info)
                summary = run_unit(unit, session, results_dir=req.results_dir, force=req.force, run_ctx=ctx)
            except UserError as exc:
                summary = UnitSummary(csv=csv, status="failed", message=str(exc), wall_s=time.time() - t0)
                summary.extra["cause"] = getattr(exc, "cause", str(exc))
            summary.extra.update(model=spec.key, task=task.key)
            summaries.append(summary)
            ledger_append(f"{spec.key} x {task.key}", summary.status, summary.message)
            print(f"[{req.arm}] {spec.key} / {task.key}: {_describe(summary)} ({summary.wall_s:.1f}s)",
                  file=sys.stderr, flush=True)
    return summaries


def _describe(s: UnitSummary) -> str:
    if s.status == "failed":
        return f"FAILED: {s.message}"
    tail = f", {s.parse_failures} parse failures" if s.parse_failures else ""
    tail += f", {s.errors} errors" if s.errors else ""
    return f"{s.status}, n={s.n}, score={s.score:.3f}{tail}"


def _print_plan(req: MatrixRequest, specs: list[ModelSpec], tasks: list[Task], source: str) -> None:
    limit = req.limit or "all"
    print(f"dry run: arm={req.arm} data={source} results-dir={req.results_dir} limit={limit}")
    calls = 0
    for spec in specs:
        for task in tasks:
            n = req.limit or 0
            calls += n
            print(f"  unit {spec.key} x {task.key}: {limit} examples -> "
                  f"{result_csv(req.results_dir, prefix_for(spec), req.arm, task.key, spec.key)}")
    if req.limit:
        print(f"projected LM calls: {calls} (one per example; the chat adapter's JSON fallback can add one per "
              f"parse failure; cached responses cost none)")
    else:
        print("projected LM calls: one per eval example of each task (no --limit: whole eval splits)")


def print_table(summaries: list[UnitSummary], out=sys.stdout) -> None:
    """A short model x task table of primary scores (n and failure counts alongside)."""
    rows = [s for s in summaries if s.status != "failed"]
    if not summaries:
        return
    print("\nmodel x task  score (n, parse failures, errors)  status", file=out)
    for s in summaries:
        name = s.csv.stem
        if s.status == "failed":
            print(f"  {name}: FAILED - {s.message}", file=out)
        else:
            score = "nan" if math.isnan(s.score) else f"{s.score:.3f}"
            print(f"  {name}: {score} (n={s.n}, pf={s.parse_failures}, err={s.errors})  {s.status}", file=out)
    failed = len(summaries) - len(rows)
    print(f"{len(rows)} unit(s) ok, {failed} failed", file=out)
    report_failures(summaries)


def report_failures(summaries: list[UnitSummary], err=None) -> None:
    """The run's failure causes on stderr, one line each ("error: model gpt-4o: the server rejected OPENAI_API_KEY
    (401) - 9 of 9 unit(s)"), so a failed run says why in its last lines."""
    err = err or sys.stderr
    failed = [s for s in summaries if s.status == "failed"]
    causes: dict[str, int] = {}
    for s in failed:
        cause = str(s.extra.get("cause") or s.message)
        causes[cause] = causes.get(cause, 0) + 1
    for cause, n in causes.items():
        print(f"error: {cause} - {n} of {len(summaries)} unit(s)", file=err)

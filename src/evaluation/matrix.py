"""A model x task matrix of evaluation units: the loop shared by the baseline, optimized-eval and single-run commands."""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dspy

from src.backends.session import Sessions, SessionOptions
from src.errors import UserError
from src.evaluation.unit import EvalUnit, Evaluator, UnitSummary, run_unit
from src.results.ledger import ledger_append
from src.results.naming import prefix_for, result_csv
from src.results.provenance import run_context
from src.tasks import get_task
from src.tasks.bounds import bound_for
from src.tasks.sources import resolve_source
from src.tasks.splits import TaskData, load_task_data

if TYPE_CHECKING:
    from src.backends.session import ModelSession
    from src.registry import Config, ModelSpec
    from src.tasks.base import Task
    from src.tasks.example import TaskExample

# (task, model spec) -> (program, info for the sidecar), or None to skip that pair with a reason
ProgramFor = Callable[["Task", "ModelSpec"], "tuple[dspy.Module, dict[str, Any]]"]
# (task data, program) -> the model session a unit runs in (bounded by the task's generation bound where it applies)
OpenSession = Callable[["TaskData", "dspy.Module"], "ModelSession"]


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
    repeats: int = 1  # attempts per example (--repeats k)


SMOKE_WARNING = ("warning: no IA_DATA_DIR and the Hugging Face hub is unreachable: {tasks} on the built-in SMOKE "
                 "samples (20-odd examples per task; they prove the pipeline, they are not a benchmark)")


class DataCache:
    """Each task's data is loaded once per command, whatever the number of models (and of threads asking).

    When `--data auto` falls back to the built-in samples, one warning line names the tasks that read them (a task
    over the user's own files reads those whatever --data says): for `tasks`, said at once; for tasks not named
    up front, when each first loads. `announce=False`: say nothing (a projection before the run proper)."""

    def __init__(self, config: Config, mode: str, tasks: Sequence[Task] = (), announce: bool = True):
        self.config = config
        self.source = resolve_source(mode, config, announce=False)
        self._data: dict[str, TaskData] = {}
        self._lock = threading.Lock()
        self._warn = announce and mode == "auto" and self.source.smoke
        self._warned: set[str] = set()
        self.announce(tasks)

    def on_smoke_samples(self, task: Task) -> bool:
        return task.split_source(self.source, task.spec.eval) is self.source and self.source.smoke

    def announce(self, tasks: Sequence[Task]) -> None:
        """The one line naming which of `tasks` run on built-in smoke samples (none: nothing said)."""
        smoke = [t.key for t in tasks if t.key not in self._warned and self.on_smoke_samples(t)]
        if not self._warn or not smoke:
            return
        self._warned.update(smoke)
        named = f"task {smoke[0]} runs" if len(smoke) == 1 else f"tasks {', '.join(smoke)} run"
        print(SMOKE_WARNING.format(tasks=named), file=sys.stderr, flush=True)

    def get(self, task: Task) -> TaskData:
        with self._lock:
            if task.key not in self._data:
                self._data[task.key] = load_task_data(task, self.source)
                self.announce([task])
            return self._data[task.key]


@dataclass(frozen=True)
class PlannedUnit:
    """A unit the matrix will run: its model, task, eval examples and result file (for spend projections)."""

    spec: ModelSpec
    task: Task
    examples: list[TaskExample]
    csv: Path
    calls_per_example: int
    repeats: int = 1


def planned_units(req: MatrixRequest, specs: list[ModelSpec], tasks: list[Task], data: DataCache) -> list[PlannedUnit]:
    """Every (model, task) unit of the request with its eval examples; a task whose data cannot load is left to
    the run (which reports it per unit)."""
    out = []
    for task in tasks:
        try:
            examples = data.get(task).eval_subset(req.limit)
        except UserError:
            continue
        per = max(1, len(task.program().predictors()))
        for spec in specs:
            out.append(PlannedUnit(spec, task, examples, result_csv(req.results_dir, prefix_for(spec), req.arm,
                                                                    task.key, spec.key), per, req.repeats))
    return out


def evaluate_matrix(req: MatrixRequest, config: Config, program_for: ProgramFor,
                    sessions: Sessions | None = None,
                    check_spend: Callable[[list[PlannedUnit]], None] | None = None,
                    on_unit: Callable[[UnitSummary, Task, ModelSpec], None] | None = None) -> list[UnitSummary]:
    """Preflight every model, then run every (model, task) unit; one failed unit never stops the others.

    `check_spend` (--max-cost) sees every planned unit before any preflight or call, and may refuse the run;
    `on_unit` (--mlflow) is told of every unit as it ends."""
    sessions = sessions or Sessions(config, SessionOptions(adapter=req.adapter, concurrency=req.concurrency,
                                                           cache=req.cache))
    tasks = [get_task(k, config) for k in req.task_keys]
    data = DataCache(config, req.data_mode, tasks)
    specs = [sessions.spec(k) for k in req.model_keys]
    if req.dry_run:
        _print_plan(req, specs, tasks, data.source.describe())
        if check_spend is not None:
            check_spend(planned_units(req, specs, tasks, data))
        return []
    if check_spend is not None:
        check_spend(planned_units(req, specs, tasks, data))
    sessions.preflight(req.model_keys, req.adapter)
    ctx = run_context()
    summaries: list[UnitSummary] = []
    for spec in specs:
        for task in tasks:
            def open_session(td: TaskData, program: dspy.Module, spec: ModelSpec = spec) -> ModelSession:
                return sessions.for_task(spec.key, bound_for(td.provenance, program), adapter=req.adapter)

            summary = run_eval_unit(req.arm, spec, task, data, req.limit, program_for, open_session,
                                    req.results_dir, req.force, ctx, repeats=req.repeats)
            summaries.append(summary)
            if on_unit is not None:
                on_unit(summary, task, spec)
    return summaries


def run_eval_unit(arm: str, spec: ModelSpec, task: Task, data: DataCache, limit: int | None, program_for: ProgramFor,
                  open_session: OpenSession, results_dir: Path, force: bool, ctx: dict[str, Any],
                  evaluator: Evaluator | None = None, repeats: int = 1, progress: bool = True) -> UnitSummary:
    """One (model, task) evaluation unit, whichever runner or scheduler drives it: a failure is its summary.
    `open_session` gives the model's session for this data and program (its generation bound: src.tasks.bounds);
    `repeats`: attempts per example (--repeats); `progress`: the unit's own progress bar (off when a scheduler runs
    many units at once and shows one progress view for all of them)."""
    csv = result_csv(results_dir, prefix_for(spec), arm, task.key, spec.key)
    t0 = time.time()  # one console line per unit, at its end (its progress bar, or the study's view, shows it running)
    try:
        td = data.get(task)
        program, info = program_for(task, spec)
        session = open_session(td, program)
        unit = EvalUnit(arm, task, td, td.eval_subset(limit), program, csv, info, repeats=repeats)
        summary = run_unit(unit, session, results_dir=results_dir, force=force, run_ctx=ctx, evaluator=evaluator,
                           progress=progress)
    except UserError as exc:
        summary = UnitSummary(csv=csv, status="failed", message=str(exc), wall_s=time.time() - t0)
        summary.extra["cause"] = getattr(exc, "cause", str(exc))
    summary.extra.update(model=spec.key, task=task.key)
    ledger_append(f"{spec.key} x {task.key}", summary.status, summary.message)
    print(f"[{arm}] {spec.key} / {task.key}: {_describe(summary)} ({summary.wall_s:.1f}s)\n", end="",
          file=sys.stderr, flush=True)  # one write: units end on many threads at a time under the study scheduler
    return summary


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
            n = (req.limit or 0) * req.repeats
            calls += n
            times = f" x {req.repeats} attempts" if req.repeats > 1 else ""
            print(f"  unit {spec.key} x {task.key}: {limit} examples{times} -> "
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

"""Result files as consolidation inputs: CSVs validated into Units, plus what the registries say of models/tasks."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from src.consolidation.programs import ProgramSidecar, load_programs, pick_program
from src.consolidation.studies import StudyFiles
from src.errors import UserError
from src.results.files import read_csv
from src.results.naming import STUDY_OPTIMIZER, meta_path, parse_result_name, result_prefix
from src.results.record import Record
from src.results.schema import UnitMeta

if TYPE_CHECKING:
    from src.registry import Config
    from src.tasks.example import Score

REQUIRED_COLUMNS = ("experiment_id", "model", "task", "phase", "example_id", "prediction", "ground_truth", "score",
                    "is_correct")
_NUMERIC_FIELDS = ("score", "is_correct", "parse_failure", "latency_ms", "input_tokens", "output_tokens",
                   "thinking_tokens", "lm_calls", "cost_usd", "cache_hit")
MAIN_ARMS = ("baseline", "optimized")
ArmKey = tuple[str, str, str]  # (arm, model, task)


class TaskLike(Protocol):
    """What consolidation needs of a Task (src.tasks.base): its corpus aggregate and the shape of its metric.

    A protocol rather than the class itself: consolidation must not import the tasks' DSPy layer."""

    binary: bool
    mean_aggregate: bool

    def aggregate(self, scores: list[Score]) -> float: ...


TaskResolver = Callable[[str], TaskLike]


# ---- loading -----------------------------------------------------------------------------------------------------

@dataclass
class Unit:
    """One result CSV: an (arm, model, task) with its records and sidecar (empty when missing or unreadable).

    With --repeats k the CSV holds k attempts per example (column `repeat`): `attempts` keeps them all, and
    `records` holds one record per example whose score is the mean of its attempts (what every paired statistic
    uses: deltas are on per-example means), is_correct the majority, tokens, cost and latency the means per attempt,
    the rest from the first attempt. With k = 1 `records` is `attempts`."""

    path: Path
    arm: str
    prefix: str | None  # 'api' / 'local' from the file name, if it follows the convention
    model: str
    task: str
    records: list[Record]
    meta: UnitMeta = field(default_factory=UnitMeta)

    def __post_init__(self) -> None:
        self.attempts = list(self.records)
        groups: dict[str, list[Record]] = {}
        for r in self.attempts:
            groups.setdefault(r.example_id, []).append(r)
        self.repeats = max((len(g) for g in groups.values()), default=1)
        if self.repeats > 1:
            self.records = [_mean_record(g) for g in groups.values()]
        self.by_attempts = groups
        self.by_id = {r.example_id: r for r in self.records}
        self.ids = [r.example_id for r in self.records]

    @property
    def name(self) -> str:
        return self.path.name


def _validate_record(rec: Record) -> str | None:
    for name in ("model", "task", "example_id"):
        if not isinstance(getattr(rec, name), str) or not getattr(rec, name).strip():
            return f"empty or missing '{name}'"
    for name in _NUMERIC_FIELDS:
        value = getattr(rec, name)
        if value is None or isinstance(value, str):
            return f"missing or non-numeric '{name}' (truncated file?)"
        if not math.isfinite(float(value)):
            return f"non-finite '{name}' ({value})"
    if not -1e-9 <= rec.score <= 1 + 1e-9:
        return f"score {rec.score} outside [0, 1]"
    for name in ("is_correct", "parse_failure", "cache_hit"):
        if getattr(rec, name) not in (0, 1):
            return f"'{name}' must be 0 or 1, got {getattr(rec, name)}"
    return None


def read_result_csv(path: Path) -> list[Record]:
    """A result CSV's records; anything that is not one of ours (or is corrupt) is a one-line UserError."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), None)
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: corrupt result CSV ({exc})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in (header or [])]
    if missing:
        raise UserError(f"{path}: not a result CSV (missing column(s) {', '.join(missing)})")
    try:
        records = read_csv(path)
    except TypeError as exc:
        raise UserError(f"{path}: not a result CSV ({exc})") from None
    seen: set[str] = set()
    for i, rec in enumerate(records, start=2):
        problem = _validate_record(rec)
        if problem:
            raise UserError(f"{path}: corrupt result CSV (data row {i - 1}: {problem})")
        if rec.key in seen:
            again = f"example_id '{rec.example_id}'" + (f" repeat {rec.repeat}" if rec.repeat else "")
            raise UserError(f"{path}: not a unit's result CSV ({again} appears twice)")
        seen.add(rec.key)
    return records


def _arm_from_name(name: str, model: str, task: str, known_models: Iterable[str],
                   known_tasks: Iterable[str]) -> tuple[str | None, str | None, bool]:
    """(api|local prefix, arm, whether the name's model/task agree with the columns) from a result file name."""
    own = parse_result_name(name, tasks=[task], models=[model])
    if own is not None:
        return own.prefix, own.arm, True
    prefix = result_prefix(name)
    if prefix is None:  # not in the naming convention at all: the phase column says the arm
        return None, None, True
    # In the convention but naming another model/task than the columns (the columns win; the arm may still be read).
    other = parse_result_name(name, tasks=[*known_tasks, task], models=[*known_models, model])
    return prefix, other.arm if other else None, False


def _read_unit_meta(path: Path) -> tuple[UnitMeta, str]:
    """A result CSV's sidecar and the note to make about it ('' when it was read)."""
    mp = meta_path(path)
    if not mp.is_file():
        return UnitMeta(), f"`{path.name}` has no .meta.json sidecar: provenance (DSPy version, data) unknown"
    try:
        data = json.loads(mp.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return UnitMeta(), f"`{mp.name}` cannot be read ({exc.__class__.__name__}): provenance unknown"
    if not isinstance(data, dict):
        return UnitMeta(), f"`{mp.name}` is not a JSON object: ignored"
    return UnitMeta.from_dict(data), ""


def load_units(results_dir: Path, known_models: Iterable[str] = (),
               known_tasks: Iterable[str] = ()) -> tuple[list[Unit], list[str]]:
    """Every result CSV at the top level of results_dir (hidden files skipped), validated, with notes.

    `known_models`/`known_tasks` (the registry's keys) let a file whose name names another model/task than its
    columns still tell its arm."""
    known_models, known_tasks = list(known_models), list(known_tasks)
    notes: list[str] = []
    units: list[Unit] = []
    seen: dict[ArmKey, Path] = {}
    for path in sorted(p for p in results_dir.glob("*.csv") if not p.name.startswith(".")):
        records = read_result_csv(path)
        if not records:
            notes.append(f"`{path.name}` has no rows: skipped")
            continue
        models = sorted({r.model for r in records})
        tasks = sorted({r.task for r in records})
        if len(models) > 1 or len(tasks) > 1:
            raise UserError(f"{path}: not a unit's result CSV (it mixes model(s) {', '.join(models)} and task(s) "
                            f"{', '.join(tasks)})")
        model, task = models[0], tasks[0]
        prefix, arm, agrees = _arm_from_name(path.name, model, task, known_models, known_tasks)
        if not agrees:
            notes.append(f"`{path.name}`: its name does not match its columns (model {model}, task {task}); the "
                         f"columns are used")
        if arm is None:
            phases = {r.phase for r in records}
            if len(phases) != 1 or not next(iter(phases)).strip():
                raise UserError(f"{path}: cannot tell its phase (file name not '{{api|local}}_<phase>_<task>_<model>"
                                f".csv' and phase column {sorted(phases)})")
            arm = next(iter(phases))
        key = (arm, model, task)
        if key in seen:
            raise UserError(f"{path}: holds the same {arm} results for {model} / {task} as {seen[key].name}; keep "
                            f"one of them")
        seen[key] = path
        meta, meta_note = _read_unit_meta(path)
        if meta_note:
            notes.append(meta_note)
        if meta.status not in (None, "complete"):
            notes.append(f"`{path.name}` is marked '{meta.status}' in its sidecar: results may be incomplete")
        units.append(Unit(path, arm, prefix, model, task, records, meta))
    return units, notes


# ---- registry facts ------------------------------------------------------------------------------------------------

def _mean_record(attempts: list[Record]) -> Record:
    """One example's attempts as one record: mean score, majority correctness, mean per-attempt costs."""
    first = min(attempts, key=lambda r: r.repeat)
    k = len(attempts)

    def mean(name: str) -> float:
        return sum(getattr(r, name) for r in attempts) / k

    return dataclasses.replace(
        first, score=mean("score"), is_correct=int(mean("is_correct") > 0.5),
        parse_failure=int(mean("parse_failure") > 0.5),
        error=first.error if all(r.error for r in attempts) else "", latency_ms=mean("latency_ms"),
        input_tokens=round(mean("input_tokens")), output_tokens=round(mean("output_tokens")),
        thinking_tokens=round(mean("thinking_tokens")), lm_calls=round(mean("lm_calls")), cost_usd=mean("cost_usd"),
        cache_hit=int(all(r.cache_hit for r in attempts)), repeat=0)


@dataclass
class ModelInfo:
    key: str
    kind: str  # local | api
    supports_thinking: bool = False
    price_in: float = 0.0
    price_out: float = 0.0
    params_b: float | None = None
    order: int = 10**6
    source: str = "registry"
    stand_in: bool = False  # a local model standing in for a frontier API (its $ are local, its role is API's)

    @property
    def has_prices(self) -> bool:
        return (self.price_in or 0) > 0 or (self.price_out or 0) > 0


@dataclass
class TaskInfo:
    key: str
    title: str
    metric: str
    binary: bool
    task: TaskLike | None  # None when its module could not be loaded
    mean_aggregate: bool
    order: int = 10**6
    note: str = ""

    def aggregate(self, scores: list[Score]) -> float:
        if not scores:
            return float("nan")
        if self.task is not None:
            return float(self.task.aggregate(scores))
        return sum(s.score for s in scores) / len(scores)


def model_info(key: str, units: list[Unit], config: Config | None) -> ModelInfo:
    """The registry's description of a model; else its sidecar's; else the api/local prefix of its file names."""
    if config is not None and key in config.models:
        spec = config.models[key]
        api_role = spec.kind == "api" or spec.frontier_stand_in
        return ModelInfo(key, "api" if api_role else "local", spec.supports_thinking, spec.price_in,
                         spec.price_out, spec.params_b, list(config.models).index(key),
                         stand_in=spec.frontier_stand_in and spec.kind != "api")
    for u in units:
        mm = u.meta.model
        if mm.get("kind") in ("api", "local"):
            stand_in = bool(mm.get("frontier_stand_in")) and mm["kind"] != "api"
            return ModelInfo(key, "api" if stand_in else mm["kind"], bool(mm.get("supports_thinking")),
                             float(mm.get("price_in") or 0), float(mm.get("price_out") or 0), mm.get("params_b"),
                             source="sidecar", stand_in=stand_in)
    prefix = next((u.prefix for u in units if u.prefix), "local")
    return ModelInfo(key, prefix, source="file name")


def no_registry(key: str) -> TaskLike:
    raise UserError("no task registry loaded")


def task_info(key: str, units: list[Unit], resolver: TaskResolver, config: Config | None) -> TaskInfo:
    """The task's metric from its Task object; a task that cannot be loaded falls back to the mean, loudly."""
    order = list(config.tasks).index(key) if config is not None and key in config.tasks else 10**6
    try:
        task = resolver(key)
    except Exception as exc:  # noqa: BLE001 - an unloadable task module must not stop consolidation
        scores = {r.score for u in units for r in u.records}
        binary = scores <= {0.0, 1.0}
        note = (f"task `{key}`: its module could not be loaded ({str(exc).splitlines()[0] if str(exc) else exc!r});"
                f" corpus score = mean of per-example scores and the task is treated as "
                f"{'binary' if binary else 'continuous'} (inferred from the scores) — if its real metric is not a "
                f"mean (e.g. micro-F1) these numbers differ from the runner's")
        return TaskInfo(key, key, "mean score", binary, None, True, order, note)
    spec = getattr(task, "spec", None)
    return TaskInfo(key, getattr(spec, "title", key), getattr(spec, "metric", "score"), bool(task.binary), task,
                    bool(task.mean_aggregate), order)


# ---- everything consolidation reads ----------------------------------------------------------------------------

@dataclass
class Inputs:
    """The results folder, loaded and described: units, registry facts, optimization sidecars, later studies."""

    results_dir: Path
    units: list[Unit]
    notes: list[str]
    minfo: dict[str, ModelInfo]
    tinfo: dict[str, TaskInfo]
    models: list[str]  # local models first, then API ones; registry order within each
    tasks: list[str]  # registry order
    arm_names: list[str]  # baseline, optimized, then the other arms found, sorted
    extra_arms: list[str]
    unit: dict[ArmKey, Unit]
    programs: dict[tuple[str, str], list[ProgramSidecar]]  # optimization sidecars by (model, task)
    studies: StudyFiles

    def program_for(self, model: str, task: str) -> ProgramSidecar | None:
        """The optimization sidecar behind an optimized arm: matched by optimizer / program file, or the only one."""
        return _program_for(self.unit, self.programs, model, task)


def _program_for(unit: dict[ArmKey, Unit], programs: dict[tuple[str, str], list[ProgramSidecar]], model: str,
                 task: str) -> ProgramSidecar | None:
    u = unit.get(("optimized", model, task))
    return pick_program(programs.get((model, task), []), u.meta.program if u is not None else None)


def load_inputs(results_dir: Path, config: Config | None, resolver: TaskResolver | None) -> Inputs:
    """Read and validate everything under results_dir; problems that do not stop consolidation become notes."""
    if not results_dir.is_dir():
        raise UserError(f"{results_dir}: results folder does not exist (give --results-dir)")
    units, notes = load_units(results_dir, config.models if config else (), config.tasks if config else ())
    if not units:
        raise UserError(f"{results_dir}: no result CSVs found at its top level (nothing to consolidate)")
    by_model: dict[str, list[Unit]] = defaultdict(list)
    by_task: dict[str, list[Unit]] = defaultdict(list)
    for u in units:
        by_model[u.model].append(u)
        by_task[u.task].append(u)
    minfo = {m: model_info(m, us, config) for m, us in by_model.items()}
    for mi in minfo.values():
        if mi.source != "registry":
            notes.append(f"model `{mi.key}` is not in the registry: kind '{mi.kind}' taken from its {mi.source}")
    tinfo = {t: task_info(t, us, resolver or no_registry, config) for t, us in by_task.items()}
    notes += [ti.note for ti in tinfo.values() if ti.note]
    models = sorted(minfo, key=lambda m: (minfo[m].kind != "local", minfo[m].order, m))
    tasks = sorted(tinfo, key=lambda t: (tinfo[t].order, t))
    extra = sorted({u.arm for u in units} - set(MAIN_ARMS))
    arm_names = [a for a in MAIN_ARMS if any(u.arm == a for u in units)] + extra
    unit = {(u.arm, u.model, u.task): u for u in units}
    # Sidecars that name no model/task are read from their file name: the optimizers that can appear there are the
    # study's and the other arms in the results (each other arm is filed under its optimizer's name).
    programs = load_programs(results_dir, tasks=set(tinfo) | set(config.tasks if config else []),
                             optimizers=[STUDY_OPTIMIZER, *extra], notes=notes)
    for u in (u for u in units if u.arm == "optimized"):  # whose sidecar describes another program than evaluated
        ps = _program_for(unit, programs, u.model, u.task)
        evaluated, described = u.meta.program.sha256, ps.meta.program_sha256 if ps else None
        if ps and evaluated and described and evaluated != described:
            notes.append(f"`{u.name}` was evaluated with program sha256 {evaluated[:12]}… but `{ps.path.name}` now "
                         f"describes {described[:12]}… (re-optimized since?): its demo counts and optimization cost "
                         f"may not belong to this result")
    return Inputs(results_dir, units, notes, minfo, tinfo, models, tasks, arm_names, extra, unit, programs,
                  StudyFiles.load(results_dir, notes))

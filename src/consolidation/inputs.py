"""Result files as consolidation inputs: CSVs validated into Units, plus what the registries say of models/tasks."""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.errors import UserError
from src.results.files import read_csv
from src.results.naming import meta_path
from src.results.record import Record

if TYPE_CHECKING:
    from src.registry import Config
    from src.tasks.base import Task
    from src.tasks.example import Score

REQUIRED_COLUMNS = ("experiment_id", "model", "task", "phase", "example_id", "prediction", "ground_truth", "score",
                    "is_correct")
_NUMERIC_FIELDS = ("score", "is_correct", "parse_failure", "latency_ms", "input_tokens", "output_tokens",
                   "thinking_tokens", "lm_calls", "cost_usd", "cache_hit")
MAIN_PHASES = ("baseline", "optimized")
TaskResolver = Callable[[str], "Task"]



# ---- loading -----------------------------------------------------------------------------------------------------

@dataclass
class Unit:
    """One result CSV: a (phase, model, task) arm with its records and sidecar."""

    path: Path
    phase: str
    prefix: str | None  # 'api' / 'local' from the file name, if it follows the convention
    model: str
    task: str
    records: list[Record]
    meta: dict[str, Any] | None
    meta_note: str = ""

    def __post_init__(self) -> None:
        self.by_id = {r.example_id: r for r in self.records}
        self.ids = [r.example_id for r in self.records]

    @property
    def name(self) -> str:
        return self.path.name

    def m(self, *keys: str) -> Any:
        """A nested meta value, None when absent (sidecars are read defensively)."""
        cur: Any = self.meta or {}
        for k in keys:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(k)
        return cur

    @property
    def dspy_version(self) -> str | None:
        return self.m("unit", "dspy") or self.m("run", "versions", "dspy")

    @property
    def data_source(self) -> str | None:
        return self.m("unit", "data_source") or self.m("data", "source")

    @property
    def eval_fingerprint(self) -> str | None:
        return self.m("unit", "eval_fingerprint") or self.m("data", "eval_fingerprint")

    @property
    def smoke(self) -> bool:
        return bool(self.m("smoke_data") or self.m("data", "smoke_data"))


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
        if rec.example_id in seen:
            raise UserError(f"{path}: not a unit's result CSV (example_id '{rec.example_id}' appears twice)")
        seen.add(rec.example_id)
    return records


def _phase_from_name(name: str, model: str, task: str) -> tuple[str | None, str | None, bool]:
    """(api|local prefix, phase, whether the name's task/model agree with the columns) from a result file name."""
    m = re.match(r"^(api|local)_(.+)\.csv$", name)
    if not m:
        return None, None, True
    prefix, rest = m.groups()
    if rest == f"baseline_{task}_{model}":
        return prefix, "baseline", True
    if rest == f"optimized_{task}_optimized_{model}":
        return prefix, "optimized", True
    suffix = f"_{task}_{model}"
    if rest.endswith(suffix) and len(rest) > len(suffix):
        return prefix, rest[: -len(suffix)], True
    for phase in MAIN_PHASES:  # the name names another model/task than the columns (the columns win)
        if rest.startswith(phase + "_"):
            return prefix, phase, False
    return prefix, None, False


def load_units(results_dir: Path) -> tuple[list[Unit], list[str]]:
    """Every result CSV at the top level of results_dir (hidden files skipped), validated, with notes."""
    notes: list[str] = []
    units: list[Unit] = []
    seen: dict[tuple[str, str, str], Path] = {}
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
        prefix, phase, agrees = _phase_from_name(path.name, model, task)
        if not agrees:
            notes.append(f"`{path.name}`: its name does not match its columns (model {model}, task {task}); the "
                         f"columns are used")
        if phase is None:
            phases = {r.phase for r in records}
            if len(phases) != 1 or not next(iter(phases)).strip():
                raise UserError(f"{path}: cannot tell its phase (file name not '{{api|local}}_<phase>_<task>_<model>"
                                f".csv' and phase column {sorted(phases)})")
            phase = next(iter(phases))
        key = (phase, model, task)
        if key in seen:
            raise UserError(f"{path}: holds the same {phase} results for {model} / {task} as {seen[key].name}; keep "
                            f"one of them")
        seen[key] = path
        meta, meta_note = None, ""
        mp = meta_path(path)
        if mp.is_file():
            try:
                meta = json.loads(mp.read_text(encoding="utf-8"))
                if not isinstance(meta, dict):
                    meta, meta_note = None, f"`{mp.name}` is not a JSON object: ignored"
            except (OSError, ValueError) as exc:
                meta_note = f"`{mp.name}` cannot be read ({exc.__class__.__name__}): provenance unknown"
        else:
            meta_note = f"`{path.name}` has no .meta.json sidecar: provenance (DSPy version, data) unknown"
        if meta_note:
            notes.append(meta_note)
        unit = Unit(path, phase, prefix, model, task, records, meta, meta_note)
        if unit.m("status") not in (None, "complete"):
            notes.append(f"`{path.name}` is marked '{unit.m('status')}' in its sidecar: results may be incomplete")
        units.append(unit)
    return units, notes


# ---- registry facts ------------------------------------------------------------------------------------------------

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
    task: Any | None  # the Task object, None when its module could not be loaded
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
    if config is not None and key in config.models:
        spec = config.models[key]
        api_role = spec.kind == "api" or spec.frontier_stand_in
        return ModelInfo(key, "api" if api_role else "local", spec.supports_thinking, spec.price_in,
                         spec.price_out, spec.params_b, list(config.models).index(key),
                         stand_in=spec.frontier_stand_in and spec.kind != "api")
    for u in units:
        mm = u.m("model")
        if isinstance(mm, dict) and mm.get("kind") in ("api", "local"):
            stand_in = bool(mm.get("frontier_stand_in")) and mm["kind"] != "api"
            return ModelInfo(key, "api" if stand_in else mm["kind"], bool(mm.get("supports_thinking")),
                             float(mm.get("price_in") or 0), float(mm.get("price_out") or 0), mm.get("params_b"),
                             source="sidecar", stand_in=stand_in)
    prefix = next((u.prefix for u in units if u.prefix), "local")
    return ModelInfo(key, prefix, source="file name")


def no_registry(key: str) -> Task:
    raise UserError("no task registry loaded")


def task_info(key: str, units: list[Unit], resolver: TaskResolver, config: Config | None) -> TaskInfo:
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
    mean_agg = bool(task.mean_aggregate)
    spec = getattr(task, "spec", None)
    return TaskInfo(key, getattr(spec, "title", key), getattr(spec, "metric", "score"), bool(task.binary), task,
                    mean_agg, order)



"""The sidecars' schema: typed, versioned records that the writers build and every reader parses.

Four kinds of sidecar, each a dataclass here:

- UnitMeta          <result>.meta.json beside every result CSV (evaluation units of every arm and study)
- ProgramMeta       optimized_programs/{model}_{task}_{optimizer}.meta.json (one optimization unit over seeds)
- SeedMeta          optimized_programs/.seeds/.../seed{N}.meta.json (one seed of it)
- TippingCheckpoint tipping_point/checkpoints/*.json (one tipping-point cell)

Reading is lenient by design: sidecars written by older versions (no `schema_version`, version 1) or edited by
hand still load; missing fields take their defaults, fields of the wrong type are treated as missing, and fields
this version does not know are kept in `extra` and written back unchanged. Writing always stamps the current
SCHEMA_VERSION. Open-ended maps (a unit's identity header, the model's description, optimizer budgets) stay dicts.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from src.errors import UserError
from src.results.files import write_json

SCHEMA_VERSION = 2
T = TypeVar("T", bound="Sidecar")


class Sidecar:
    """Lenient dict <-> dataclass conversion shared by every sidecar type (nested Sidecar fields included)."""

    extra: dict[str, Any]

    @classmethod
    def from_dict(cls: type[T], data: Any) -> T:
        data = data if isinstance(data, dict) else {}
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}  # type: ignore[arg-type]
        kwargs: dict[str, Any] = {}
        for name in known:
            if name in data:
                value = _coerce(data[name], hints[name])
                if value is not _INVALID:
                    kwargs[name] = value
        obj = cls(**kwargs)
        obj.extra = {k: v for k, v in data.items() if k not in known}
        return obj

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if isinstance(value, Sidecar) else value
        for k, v in (self.extra or {}).items():
            out.setdefault(k, v)
        return out

    @classmethod
    def read(cls: type[T], path: Path) -> T:
        """Parse a sidecar file; an unreadable one is a one-line UserError naming it."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: cannot be read as JSON ({exc})") from None
        if not isinstance(data, dict):
            raise UserError(f"{path}: not a JSON object")
        return cls.from_dict(data)

    @classmethod
    def read_optional(cls: type[T], path: Path) -> T | None:
        return cls.read(path) if path.is_file() else None

    def write(self, path: Path) -> None:
        """Write atomically, stamped with the current schema version."""
        if hasattr(self, "schema_version"):
            self.schema_version = SCHEMA_VERSION  # type: ignore[attr-defined]
        write_json(path, self.to_dict())


_INVALID = object()


def _coerce(value: Any, hint: Any) -> Any:
    """`value` as type `hint`, or _INVALID (the field then keeps its default)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None:
            return None if type(None) in options else _INVALID
        for option in options:
            if option is type(None):
                continue
            out = _coerce(value, option)
            if out is not _INVALID:
                return out
        return _INVALID
    if isinstance(hint, type) and issubclass(hint, Sidecar):
        return hint.from_dict(value) if isinstance(value, dict) else _INVALID
    if hint is Any:
        return value
    base = origin or hint
    if base is bool:
        return value if isinstance(value, bool) else _INVALID
    if base is int:
        if isinstance(value, float) and value.is_integer():  # a hand-edited "2.0" is still two
            return int(value)
        return value if isinstance(value, int) and not isinstance(value, bool) else _INVALID
    if base is float:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else _INVALID
    if base is str:
        return value if isinstance(value, str) else _INVALID
    if base in (dict, list):
        return value if isinstance(value, base) else _INVALID
    return value


# ---- evaluation units ------------------------------------------------------------------------------------------

@dataclass
class RunInfo(Sidecar):
    """Facts shared by every sidecar a run writes (src.results.provenance.run_context)."""

    versions: dict[str, Any] = field(default_factory=dict)
    git_sha: str | None = None
    command: str = ""
    host: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    created_epoch: float | None = None
    # python -m src.rehearse: {stand_in, stand_in_sha256, keys: {registry key: protocol}}; empty for a real run
    rehearsal: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataInfo(Sidecar):
    """Where a unit's examples came from (src.tasks.splits.load_task_data's provenance)."""

    source: str | None = None
    train_source: str | None = None
    smoke_data: bool = False
    eval_split: str | None = None
    eval_order: str | None = None
    train_split: str | None = None
    n_train: int | None = None
    n_eval: int | None = None
    eval_fingerprint: str | None = None
    train_fingerprint: str | None = None
    notes: list[Any] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExamplesInfo(Sidecar):
    n: int = 0
    fingerprint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProgramInfo(Sidecar):
    """The program a unit evaluated: its hash, and for saved programs where they came from."""

    sha: str | None = None
    kind: str | None = None  # baseline | optimized | tipping_point ...
    module: str | None = None
    file: str | None = None
    sha256: str | None = None
    saved_dspy: str | None = None
    version_mismatch: bool = False
    optimizer: str | None = None
    chosen_seed: int | None = None
    n_demos_total: int | None = None
    teacher: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class UnitStats(Sidecar):
    metric: str | None = None
    score: float | None = None
    n: int = 0
    n_correct: int = 0
    parse_failures: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class UnitMeta(Sidecar):
    """<result>.meta.json: what one evaluation unit ran, on what, under which settings, and what it found."""

    schema_version: int = 1
    status: str | None = None  # complete | partial (interrupted) | failed (every example of the unit failed) |
    #                            stopped (the spending cap was reached; the rest is done when the command is rerun)
    experiment_id: str | None = None
    unit: dict[str, Any] = field(default_factory=dict)  # the identity header (src.evaluation.unit.EvalUnit.header)
    csv_sha256: str | None = None  # of the CSV as rendered: a CSV that no longer matches is rebuilt from the journal
    smoke_data: bool = False
    model: dict[str, Any] = field(default_factory=dict)  # the spec's fields + the backend's description
    lm: dict[str, Any] = field(default_factory=dict)
    adapter: str | None = None
    concurrency: int | None = None
    data: DataInfo = field(default_factory=DataInfo)
    examples: ExamplesInfo = field(default_factory=ExamplesInfo)
    program: ProgramInfo = field(default_factory=ProgramInfo)
    seed: int | None = None
    summary: UnitStats = field(default_factory=UnitStats)
    wall_s: float | None = None
    run: RunInfo = field(default_factory=RunInfo)
    # --max-cost: {max_cost_usd, run_spent_usd, stopped_at_cap} when the run had a cap (empty: no cap); this unit's
    # own spend is summary.cost_usd
    spend: dict[str, Any] = field(default_factory=dict)
    repeats: int = 1  # attempts per example recorded (--repeats k; the CSV's `repeat` column numbers them)
    endpoints: dict[str, Any] = field(default_factory=dict)  # base URL -> requests it served (over resumed runs)
    extra: dict[str, Any] = field(default_factory=dict)

    # What readers ask of a unit, with the fallbacks older sidecars need.
    @property
    def dspy_version(self) -> str | None:
        return self.unit.get("dspy") or self.run.versions.get("dspy")

    @property
    def data_source(self) -> str | None:
        return self.unit.get("data_source") or self.data.source

    @property
    def eval_fingerprint(self) -> str | None:
        return self.unit.get("eval_fingerprint") or self.data.eval_fingerprint

    @property
    def smoke(self) -> bool:
        return bool(self.smoke_data or self.data.smoke_data)


# ---- optimization ------------------------------------------------------------------------------------------------

@dataclass
class SeedResult(Sidecar):
    """One optimizer seed's outcome, as listed in its unit's ProgramMeta.seeds."""

    seed: int | None = None
    status: str = "ok"  # ok | failed
    error: str | None = None
    dev_score: float | None = None
    predictors: dict[str, Any] = field(default_factory=dict)  # name -> {n_demos, instructions}
    n_demos: int | None = None
    module: str | None = None
    by_model: dict[str, Any] = field(default_factory=dict)
    lm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_hits: int = 0
    cost_usd: float = 0.0
    wall_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SeedMeta(Sidecar):
    """.seeds/.../seed{N}.meta.json: one seed's checkpoint (its unit's header is its identity)."""

    header: dict[str, Any] = field(default_factory=dict)
    status: str | None = None
    dev_score: float | None = None
    result: SeedResult = field(default_factory=SeedResult)
    schema_version: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class DevBaseline(Sidecar):
    """.seeds/.../baseline_dev.json: the unoptimized program's dev score, the reference every seed is read against."""

    header: dict[str, Any] = field(default_factory=dict)
    dev_score: float | None = None
    schema_version: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimizationCost(Sidecar):
    lm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_hits: int = 0
    cost_usd: float | None = None
    wall_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProgramMeta(Sidecar):
    """optimized_programs/{model}_{task}_{optimizer}.meta.json: one optimization unit over its seeds."""

    schema_version: int = 1
    model: str | None = None
    task: str | None = None
    optimizer: str | None = None
    teacher: str | None = None
    teacher_is_student: bool = False
    preset: str | None = None
    budgets: dict[str, Any] = field(default_factory=dict)
    adapter: str | None = None
    lm: dict[str, Any] = field(default_factory=dict)  # {"student": ..., "teacher": ...}: the LMs' settings as run
    seeds: list[SeedResult] = field(default_factory=list)
    baseline_dev_score: float | None = None
    optimization_cost: OptimizationCost = field(default_factory=OptimizationCost)
    header: dict[str, Any] = field(default_factory=dict)  # the unit's identity
    data: DataInfo = field(default_factory=DataInfo)
    run: RunInfo = field(default_factory=RunInfo)
    status: str | None = None  # ok | failed
    reason: str | None = None
    chosen_seed: int | None = None
    dev_score: float | None = None
    predictors: dict[str, Any] = field(default_factory=dict)
    n_demos_total: int | None = None
    module: str | None = None
    program_file: str | None = None
    program_sha256: str | None = None
    versions: dict[str, Any] = field(default_factory=dict)
    # --max-cost: {max_cost_usd, run_spent_usd, stopped_at_cap} when the run had a cap (empty: no cap); the unit's
    # own spend is optimization_cost.cost_usd
    spend: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any) -> ProgramMeta:
        obj = super().from_dict(data)
        raw = data.get("seeds") if isinstance(data, dict) else None
        obj.seeds = [SeedResult.from_dict(s) for s in raw if isinstance(s, dict)] if isinstance(raw, list) else []
        return obj

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["seeds"] = [s.to_dict() for s in self.seeds]
        return out

    @property
    def demo_count(self) -> int | None:
        """Demos in the chosen program (n_demos_total, or summed over predictors in older sidecars)."""
        if self.n_demos_total is not None:
            return self.n_demos_total
        counts = [p.get("n_demos") for p in self.predictors.values() if isinstance(p, dict)]
        return sum(int(c or 0) for c in counts) if counts else None

    @property
    def is_chain_of_thought(self) -> bool:
        return self.module == "ChainOfThought"


# ---- tipping point -----------------------------------------------------------------------------------------------

@dataclass
class TippingCheckpoint(Sidecar):
    """tipping_point/checkpoints/*.json: one (model, task, n, seed) cell, compiled and evaluated."""

    header: dict[str, Any] = field(default_factory=dict)  # the cell's identity
    n: int = 0
    seed: int | None = None
    score: float | None = None
    n_examples: int = 0
    errors: int = 0
    parse_failures: int = 0
    csv: str = ""
    predictors: dict[str, Any] = field(default_factory=dict)
    compile_cost: dict[str, Any] = field(default_factory=dict)
    wall_s: float | None = None
    schema_version: int = 1
    repeats: int = 1  # attempts per eval example (--repeats); a larger k extends the cell's evaluation
    program_state: dict[str, Any] = field(default_factory=dict)  # the compiled program (what a larger k evaluates)
    extra: dict[str, Any] = field(default_factory=dict)

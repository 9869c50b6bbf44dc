"""Evaluation units of work: (model, task, phase[, seed]) -> one CSV + sidecar, idempotent and resumable."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dspy

from src.adapters import build_adapter
from src.backends import LMSettings, backend_for
from src.engine import EngineSettings, evaluate
from src.errors import UserError
from src.results import Journal, Record, UnitSummary, archive, journal_path, meta_path, read_json, write_csv, write_json
from src.tasks.base import Score

if TYPE_CHECKING:
    from src.backends import Backend
    from src.config import Config, ModelSpec
    from src.tasks.base import Task, TaskExample
    from src.tasks.data import TaskData


@dataclass
class ModelSession:
    """A model made ready for a run: backend, LM and adapter, created once and shared by all its units."""

    spec: ModelSpec
    backend: Backend
    lm: dspy.LM
    adapter: dspy.Adapter
    adapter_name: str
    lm_settings: LMSettings
    concurrency: int

    @classmethod
    def open(cls, model_key: str, config: Config, *, adapter: str | None = None, concurrency: int | None = None,
             cache: bool = True, max_tokens: int | None = None) -> ModelSession:
        backend = backend_for(model_key, config)
        conc = concurrency or backend.default_concurrency
        settings = LMSettings(concurrency=conc, cache=cache, max_tokens=max_tokens)
        adapter_name = adapter or backend.spec.adapter
        return cls(backend.spec, backend, backend.make_lm(settings), build_adapter(adapter_name, backend.spec),
                   adapter_name, settings, conc)

    def lm_facts(self) -> dict[str, Any]:
        kw = dict(self.lm.kwargs)
        kw.pop("api_key", None)
        return {"model": self.lm.model, "temperature": kw.get("temperature"),
                "max_tokens": kw.get("max_tokens") or kw.get("max_completion_tokens"),
                "num_ctx": kw.get("num_ctx"), "cache": self.lm_settings.cache, "num_retries": self.lm.num_retries}


def program_sha(program: dspy.Module) -> str:
    """Identity of a program: signatures, instructions and demos (what the model actually sees)."""
    state = json.dumps(program.dump_state(), sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(state.encode()).hexdigest()[:16]


def record_score(rec: Record) -> Score:
    return Score(rec.score, bool(rec.is_correct), rec.prediction, rec.extras_dict)


@dataclass
class EvalUnit:
    """One (model, task, phase) evaluation and the file that holds its result."""

    phase: str
    task: Task
    data: TaskData
    examples: list[TaskExample]
    program: dspy.Module
    csv_path: Path
    program_info: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None

    def header(self, session: ModelSession) -> dict[str, Any]:
        """What must be identical for two runs to share one result file."""
        import importlib.metadata as md

        return {
            "phase": self.phase, "model": session.spec.key, "provider": session.spec.provider,
            "model_id": session.spec.model_id, "task": self.task.key, "adapter": session.adapter_name,
            "program_sha": program_sha(self.program), "data_source": self.data.provenance["source"],
            "eval_fingerprint": self.data.provenance["eval_fingerprint"],
            "temperature": session.lm_facts()["temperature"], "max_tokens": session.lm_facts()["max_tokens"],
            "dspy": md.version("dspy"), "seed": self.seed,
        }


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [f"{k}={old.get(k)!r} (now {new.get(k)!r})" for k in new if old.get(k) != new.get(k)]


def run_unit(unit: EvalUnit, session: ModelSession, *, results_dir: Path, force: bool, run_ctx: dict[str, Any],
             progress: bool = True) -> UnitSummary:
    """Evaluate what is not yet done, then render the CSV and sidecar from the journal."""
    csv_path = unit.csv_path
    journal = Journal(journal_path(csv_path))
    journal.load()
    header = unit.header(session)
    header_sha = hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()[:8]
    experiment_id = f"{unit.phase}-{session.spec.key}-{unit.task.key}-{header_sha}"

    stale = None
    if journal.header is not None and journal.header != header:
        stale = "were made with " + ", ".join(_differences(journal.header, header))
    elif journal.header is None and csv_path.exists():
        stale = "exist but have no journal (made elsewhere or by hand)"
    if force or stale:
        if stale and not force:
            raise UserError(f"{csv_path}: existing results {stale}; pass --force to replace them (the old files "
                            f"are archived under {results_dir / '.archive'}) or choose another --results-dir")
        moved = archive([csv_path, meta_path(csv_path), journal.path], results_dir)
        if moved:
            print(f"  archived previous results of {csv_path.name} to {moved}", file=sys.stderr)
        journal.load()

    todo = [ex for ex in unit.examples if ex.id not in journal.records or journal.records[ex.id].error]
    started = time.time()
    status = "reused" if not todo and csv_path.exists() else "ran"
    interrupted = False
    if todo:
        journal.start(header)
        try:
            evaluate(unit.program, todo, unit.task, session.spec, session.lm, session.adapter,
                     EngineSettings(concurrency=session.concurrency, progress=progress,
                                    label=f"{session.spec.key}/{unit.task.key}"),
                     experiment_id, unit.phase, journal.append)
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            journal.close()
            _render(unit, session, journal, csv_path, experiment_id, header, run_ctx,
                    "partial" if interrupted else "complete", time.time() - started)
    elif not csv_path.exists() or _meta_status(csv_path) != "complete":
        _render(unit, session, journal, csv_path, experiment_id, header, run_ctx, "complete", 0.0)
    wanted = {ex.id for ex in unit.examples}
    recs = [r for r in journal.records.values() if r.example_id in wanted]
    return UnitSummary(
        csv=csv_path, status=status, n=len(recs),
        score=unit.task.aggregate([record_score(r) for r in recs]) if recs else float("nan"),
        parse_failures=sum(r.parse_failure for r in recs), errors=sum(1 for r in recs if r.error),
        wall_s=time.time() - started,
    )


def _meta_status(csv_path: Path) -> str | None:
    path = meta_path(csv_path)
    if not path.is_file():
        return None
    try:
        return read_json(path).get("status")
    except UserError:
        return None


def _render(unit: EvalUnit, session: ModelSession, journal: Journal, csv_path: Path, experiment_id: str,
            header: dict[str, Any], run_ctx: dict[str, Any], status: str, wall_s: float) -> None:
    """CSV in eval-split order with each example once, and the self-describing sidecar."""
    from src.tasks.data import fingerprint

    order = {ex.id: i for i, ex in enumerate(unit.data.eval)}
    recs = sorted(journal.records.values(), key=lambda r: order.get(r.example_id, len(order)))
    write_csv(csv_path, recs)
    by_id = {ex.id: ex for ex in unit.data.eval}
    scored = [record_score(r) for r in recs]
    prior = read_json(meta_path(csv_path)) if meta_path(csv_path).is_file() else {}
    meta = {
        "status": status,
        "experiment_id": experiment_id,
        "unit": header,
        "smoke_data": unit.data.provenance.get("smoke_data", False),
        "model": {**session.spec.public_dict(), **session.backend.describe()},
        "lm": session.lm_facts(),
        "adapter": session.adapter_name,
        "concurrency": session.concurrency,
        "data": unit.data.provenance,
        "examples": {"n": len(recs), "fingerprint": fingerprint([by_id[r.example_id] for r in recs
                                                                if r.example_id in by_id])},
        "program": {"sha": header["program_sha"], **unit.program_info},
        "seed": unit.seed,
        "summary": {
            "metric": unit.task.spec.metric,
            "score": unit.task.aggregate(scored) if scored else None,
            "n": len(recs), "n_correct": sum(r.is_correct for r in recs),
            "parse_failures": sum(r.parse_failure for r in recs), "errors": sum(1 for r in recs if r.error),
            "input_tokens": sum(r.input_tokens for r in recs), "output_tokens": sum(r.output_tokens for r in recs),
            "cost_usd": round(sum(r.cost_usd for r in recs), 6),
        },
        "wall_s": round(wall_s + (prior.get("wall_s") or 0.0), 2) if prior.get("unit") == header else round(wall_s, 2),
        "run": run_ctx,
    }
    write_json(meta_path(csv_path), meta)

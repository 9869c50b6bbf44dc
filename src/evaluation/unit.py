"""One evaluation unit of work: (model, task, arm[, seed]) -> one CSV + sidecar, idempotent and resumable."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dspy

from src.backends.endpoints import served_delta
from src.backends.failures import cause_of
from src.errors import UserError
from src.evaluation.engine import EngineSettings, evaluate
from src.results.checkpoint import REFUSE, claim, made_under_larger_cap
from src.results.files import archive, csv_damage, write_csv
from src.results.journal import Journal
from src.results.naming import journal_path, meta_path, unit_files
from src.results.record import Record, record_key, record_score
from src.results.schema import (
    DataInfo,
    ExamplesInfo,
    ProgramInfo,
    RunInfo,
    UnitMeta,
    UnitStats,
)
from src.tasks.example import fingerprint

if TYPE_CHECKING:
    from src.backends.session import ModelSession
    from src.tasks.base import Task
    from src.tasks.example import TaskExample
    from src.tasks.splits import TaskData


# evaluate()'s signature (src.evaluation.engine): program, examples, task, spec, lm, adapter, settings,
# experiment_id, arm, on_record -> records
Evaluator = Callable[..., list[Record]]


def program_sha(program: dspy.Module) -> str:
    """Identity of a program: signatures, instructions and demos (what the model actually sees)."""
    state = json.dumps(program.dump_state(), sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(state.encode()).hexdigest()[:16]


@dataclass
class UnitSummary:
    """What a finished unit reports to its runner."""

    csv: Path
    status: str  # ran | reused | failed
    n: int = 0
    score: float = float("nan")
    parse_failures: int = 0
    errors: int = 0
    wall_s: float = 0.0
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalUnit:
    """One (model, task, arm) evaluation and the file that holds its result."""

    arm: str
    task: Task
    data: TaskData
    examples: list[TaskExample]
    program: dspy.Module
    csv_path: Path
    program_info: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    repeats: int = 1  # attempts per example (--repeats k); not part of the identity: a larger k extends the unit

    def attempts(self) -> list[tuple[TaskExample, int]]:
        return [(ex, r) for ex in self.examples for r in range(self.repeats)]

    def header(self, session: ModelSession) -> dict[str, Any]:
        """The unit's identity: what must be identical for two runs to share one result file. (Its keys are those
        older versions wrote, "phase" included, so their results keep resuming.)"""
        facts = session.lm_facts()
        return {
            "phase": self.arm, "model": session.spec.key, "provider": session.spec.provider,
            "model_id": session.spec.model_id, "task": self.task.key, "adapter": session.adapter_name,
            "program_sha": program_sha(self.program), "data_source": self.data.provenance["source"],
            "eval_fingerprint": self.data.provenance["eval_fingerprint"],
            "temperature": facts["temperature"], "max_tokens": facts["max_tokens"],
            "dspy": importlib.metadata.version("dspy"), "seed": self.seed,
        }


class UnitFailed(UserError):
    """Every example of a unit failed (a rejected key, an unreachable endpoint ...): the unit is failed, and its
    message is one line naming the model and the cause. Its records are kept and retried by the next run."""

    exit_code = 1

    def __init__(self, cause: str, detail: str):
        self.cause = cause  # "model <key>: <cause>", the same for every unit this cause failed
        super().__init__(f"{cause} ({detail})")


class SpendStopped(UserError):
    """The spending cap was reached during (or before) this unit: the examples done are kept, those refused are
    recorded as errors and the rest are not started; rerunning with a higher --max-cost resumes the unit."""

    exit_code = 1

    def __init__(self, why: str, detail: str):
        self.cause = why
        super().__init__(f"{why} ({detail})")


def run_unit(unit: EvalUnit, session: ModelSession, *, results_dir: Path, force: bool, run_ctx: dict[str, Any],
             progress: bool = True, on_stale: str = REFUSE, evaluator: Evaluator | None = None) -> UnitSummary:
    """Evaluate what is not yet done, then render the CSV and sidecar from the journal.

    `on_stale`: what to do with results made under other settings (src.results.checkpoint): refuse them (a unit
    the user named), or replace them (a unit owned by a checkpoint that already decided, e.g. a tipping-point cell).
    Raises UnitFailed when every example of the unit failed. `evaluator`: where the examples are evaluated (default:
    the engine in this process; the Ray executor evaluates them on a cluster node and streams the records back
    here, so this process stays the journal's one writer).
    """
    csv_path = unit.csv_path
    journal = Journal(journal_path(csv_path))
    journal.load()
    header = unit.header(session)
    header_sha = hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()[:8]
    experiment_id = f"{unit.arm}-{session.spec.key}-{unit.task.key}-{header_sha}"
    meta = _read_meta(csv_path)
    stored, evidence = journal.header, [csv_path]
    if stored is None and journal.records:
        # Records under an unreadable header line: the sidecar rendered from them says what they were made under;
        # without one they are of unknown origin, never adopted silently.
        stored = meta.unit if meta is not None and meta.unit else None
        evidence = [csv_path, journal.path]
    wanted_ids = {ex.id for ex in unit.examples}
    if not force and made_under_larger_cap(stored, header) and all(
            i in journal.records and not journal.records[i].error for i in wanted_ids):
        header = dict(stored)  # complete under a larger cap: reused as made (src.results.checkpoint)
        experiment_id = f"{unit.arm}-{session.spec.key}-{unit.task.key}-" \
                        f"{hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()[:8]}"
    # A journal whose header line was torn by a kill (and holds no record) is nothing worth keeping: only the CSV is
    # evidence.
    if not claim(stored, header, unit_files(csv_path), results_dir=results_dir, force=force,
                 what=csv_path, on_stale=on_stale, evidence=evidence):
        journal.load()
        meta = None
    if journal.damaged:
        kept = archive([journal.path], results_dir, copy=True)
        print(f"  {journal.path.name}: {journal.damaged} damaged line(s) skipped (the file as it was is kept in "
              f"{kept}); the examples they held are run again", file=sys.stderr)
    if journal.needs_rewrite:
        journal.rewrite(header)  # the readable records under the identity just checked, each on a line of its own

    done = journal.records
    todo = [(ex, r) for ex, r in unit.attempts()
            if record_key(ex.id, r) not in done or done[record_key(ex.id, r)].error]
    spend = session.lm.spend
    if todo and spend is not None and spend.reached:
        raise SpendStopped(spend.refused or "spending cap reached", f"{unit.task.key} not started")
    started = time.time()
    status, message = ("reused" if not todo and csv_path.exists() else "ran"), ""
    interrupted = False
    router = getattr(session.lm, "router", None)
    served_before = router.served_snapshot() if router is not None else {}
    if todo:
        journal.start(header)
        try:
            settings = EngineSettings(concurrency=session.concurrency, progress=progress,
                                      label=f"{session.spec.key}/{unit.task.key}",
                                      stop=(lambda: spend.reached) if spend is not None else None)
            (evaluator or evaluate)(unit.program, [ex for ex, _ in todo], unit.task, session.spec, session.lm,
                                    session.adapter, settings, experiment_id, unit.arm, journal.append,
                                    repeats=[r for _, r in todo], lm_for=session.attempt_lm)
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            journal.close()
            capped = spend is not None and spend.reached
            served = served_delta(served_before, router.served_snapshot()) if router is not None else {}
            _render(unit, session, journal, experiment_id, header, run_ctx,
                    "partial" if interrupted else "stopped" if capped else None, time.time() - started, meta, served)
        if spend is not None and spend.reached:
            wanted_keys = {record_key(ex.id, r) for ex, r in unit.attempts()}
            n_done = sum(1 for k, r in journal.records.items() if k in wanted_keys and not r.error)
            raise SpendStopped(spend.refused, f"{unit.task.key}: {n_done} of {len(wanted_keys)} "
                                              f"{'attempts' if unit.repeats > 1 else 'examples'} done and kept; "
                                              f"{csv_path.name} resumes when the command is rerun")
    else:
        damage = None
        if meta is not None and meta.status == "complete" and meta.unit == header:
            damage = csv_damage(csv_path, meta.csv_sha256, journal.records)
            if damage:
                status, message = "reused", f"{csv_path.name} was damaged ({damage}): rebuilt from its journal"
                print(f"  {message} ({len(journal.records)} records)", file=sys.stderr)
        if damage or meta is None or meta.status != "complete" or meta.unit != header:
            _render(unit, session, journal, experiment_id, header, run_ctx, None, 0.0, meta)
    wanted = {record_key(ex.id, r) for ex, r in unit.attempts()}
    recs = [r for k, r in journal.records.items() if k in wanted]
    _raise_if_all_failed(session, unit, recs, wanted)
    return UnitSummary(
        csv=csv_path, status=status, n=len({r.example_id for r in recs}),
        score=unit.task.aggregate([record_score(r) for r in recs]) if recs else float("nan"),
        parse_failures=sum(r.parse_failure for r in recs), errors=sum(1 for r in recs if r.error),
        wall_s=time.time() - started, message=message,
    )


def _raise_if_all_failed(session: ModelSession, unit: EvalUnit, recs: list[Record], wanted: set[str]) -> None:
    """UnitFailed naming the model and the commonest cause when every wanted example failed."""
    if not wanted or len(recs) < len(wanted) or not all(r.error for r in recs):
        return
    cause, _ = Counter(cause_of(r.error) for r in recs).most_common(1)[0]
    raise UnitFailed(f"model {session.spec.key}: {cause}",
                     f"all {len(recs)} examples of {unit.task.key} failed; they are retried when the command is run "
                     f"again")


def _read_meta(csv_path: Path) -> UnitMeta | None:
    path = meta_path(csv_path)
    if not path.is_file():
        return None
    try:
        return UnitMeta.read(path)
    except Exception:  # noqa: BLE001 - an unreadable sidecar is re-rendered from the journal
        return None


def _render(unit: EvalUnit, session: ModelSession, journal: Journal, experiment_id: str, header: dict[str, Any],
            run_ctx: dict[str, Any], status: str | None, wall_s: float, prior: UnitMeta | None,
            served: dict[str, int] | None = None) -> None:
    """CSV in eval-split order with each example once, and the self-describing sidecar (with the CSV's sha256, so a
    damaged CSV is noticed). `status` None: complete, or failed when every example of the unit failed."""
    csv_path = unit.csv_path
    order = {ex.id: i for i, ex in enumerate(unit.data.eval)}
    recs: list[Record] = sorted(journal.records.values(),
                                key=lambda r: (order.get(r.example_id, len(order)), r.repeat))
    csv_sha = write_csv(csv_path, recs)
    by_id = {ex.id: ex for ex in unit.data.eval}
    scored = [record_score(r) for r in recs]
    prior_wall = (prior.wall_s or 0.0) if prior is not None and prior.unit == header else 0.0
    endpoints = dict(prior.endpoints) if prior is not None and prior.unit == header else {}
    for url, n in (served or {}).items():  # which endpoints served this unit (requests, cache hits included)
        endpoints[url] = int(endpoints.get(url, 0)) + n
    if status is None:
        wanted = {record_key(ex.id, r) for ex, r in unit.attempts()}
        mine = [r for r in recs if r.key in wanted]
        status = "failed" if mine and len(mine) == len(wanted) and all(r.error for r in mine) else "complete"
    meta = UnitMeta(
        status=status,
        csv_sha256=csv_sha,
        experiment_id=experiment_id,
        unit=header,
        smoke_data=bool(unit.data.provenance.get("smoke_data", False)),
        model={**session.spec.public_dict(), **session.backend.describe()},
        lm=session.lm_facts(),
        adapter=session.adapter_name,
        concurrency=session.concurrency,
        data=DataInfo.from_dict(unit.data.provenance),
        examples=ExamplesInfo(n=len({r.example_id for r in recs}),
                              fingerprint=fingerprint([by_id[r.example_id] for r in recs
                                                       if r.example_id in by_id and r.repeat == 0])),
        program=ProgramInfo.from_dict({"sha": header["program_sha"], **unit.program_info}),
        seed=unit.seed,
        summary=UnitStats(
            metric=unit.task.spec.metric,
            score=unit.task.aggregate(scored) if scored else None,
            n=len(recs), n_correct=sum(r.is_correct for r in recs),
            parse_failures=sum(r.parse_failure for r in recs), errors=sum(1 for r in recs if r.error),
            input_tokens=sum(r.input_tokens for r in recs), output_tokens=sum(r.output_tokens for r in recs),
            cost_usd=round(sum(r.cost_usd for r in recs), 6),
        ),
        wall_s=round(wall_s + prior_wall, 2),
        run=RunInfo.from_dict(run_ctx),
        spend=session.lm.spend.facts() if session.lm.spend is not None else {},
        repeats=max([r.repeat for r in recs], default=0) + 1,
        endpoints=endpoints,
    )
    meta.write(meta_path(csv_path))

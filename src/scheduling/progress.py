"""One progress model for a whole study: units done / running / waiting per stage with each stage's elapsed time and
ETA, calls per endpoint, elapsed and projected time; and a plain-text renderer. Executors feed it (started /
finished); views read snapshots."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from src.backends.endpoints import REGISTRY, EndpointRegistry
from src.scheduling.graph import UnitGraph, UnitResult


@dataclass
class StageCounts:
    waiting: int = 0
    running: int = 0
    done: int = 0  # ran or reused
    failed: int = 0
    reused: int = 0
    started_s: float | None = None  # since the run began: the stage's first unit start (None: none started yet)
    ended_s: float | None = None  # the stage's last unit end, once no unit of it is running or waiting
    eta_s: float | None = None  # seconds from now until the stage is projected to end (None: no rate yet)

    @property
    def total(self) -> int:
        return self.waiting + self.running + self.done + self.failed


@dataclass
class EndpointCounts:
    calls: int = 0  # requests sent so far (this run)
    in_flight: int = 0
    limit: int = 0
    projected: int = 0  # requests the schedule projects for the whole run


@dataclass
class Snapshot:
    stages: dict[str, StageCounts] = field(default_factory=dict)
    endpoints: dict[str, EndpointCounts] = field(default_factory=dict)
    running: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    projected_s: float | None = None  # whole-run estimate; None until there is a rate to go by


class StudyProgress:
    """Thread-safe record of a study run, fed by an executor."""

    def __init__(self, graph: UnitGraph, registry: EndpointRegistry = REGISTRY) -> None:
        self.graph = graph
        self.registry = registry
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._calls0 = {n: s["calls"] for n, s in registry.snapshot().items()}
        self._running: dict[str, float] = {}
        self._first_start: dict[str, float] = {}  # per stage
        self._last_end: dict[str, float] = {}  # per stage
        self.results: dict[str, UnitResult] = {}

    def started(self, unit_id: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._running[unit_id] = now
            self._first_start.setdefault(self.graph.units[unit_id].stage, now)

    def finished(self, unit_id: str, result: UnitResult) -> None:
        now = time.monotonic()
        with self._lock:
            self._running.pop(unit_id, None)
            self.results[unit_id] = result
            stage = self.graph.units[unit_id].stage
            self._first_start.setdefault(stage, now)  # a reused unit never "starts"
            self._last_end[stage] = now

    def snapshot(self) -> Snapshot:
        with self._lock:
            running, results = dict(self._running), dict(self.results)
            first, last = dict(self._first_start), dict(self._last_end)
        snap = Snapshot(elapsed_s=time.monotonic() - self._t0, running=sorted(running))
        for u in self.graph.units.values():
            c = snap.stages.setdefault(u.stage, StageCounts())
            r = results.get(u.id)
            if r is None:
                c.running += u.id in running
                c.waiting += u.id not in running
            elif r.status == "failed":
                c.failed += 1
            else:
                c.done += 1
                c.reused += r.status == "reused"
        budgets = self.registry.snapshot()
        for name, n in self.graph.projected_calls().items():
            snap.endpoints[name] = EndpointCounts(projected=n)
        for name, b in budgets.items():
            e = snap.endpoints.setdefault(name, EndpointCounts())
            e.calls, e.in_flight, e.limit = b["calls"] - self._calls0.get(name, 0), b["in_flight"], b["limit"]
        for stage, c in snap.stages.items():
            if stage in first:
                c.started_s = first[stage] - self._t0
            if not c.waiting and not c.running and stage in last:
                c.ended_s = last[stage] - self._t0
        snap.projected_s = _projection(snap)
        _stage_etas(snap, self.graph, results)
        return snap


def _projection(snap: Snapshot) -> float | None:
    """The run ends when its slowest endpoint has served its projected calls at the rate seen so far; before any
    call, by the share of units finished."""
    estimates = [snap.elapsed_s * e.projected / e.calls for e in snap.endpoints.values()
                 if e.calls and e.projected and snap.elapsed_s > 1]
    if estimates:
        return max(max(estimates), snap.elapsed_s)
    total = sum(c.total for c in snap.stages.values())
    finished = sum(c.done + c.failed for c in snap.stages.values())
    if finished and snap.elapsed_s > 1:
        return snap.elapsed_s * total / finished
    return None


def _stage_etas(snap: Snapshot, graph: UnitGraph, results: dict[str, UnitResult]) -> None:
    """Each unfinished stage's ETA: on every endpoint, the calls still to come from units of that stage and of the
    stages before it (they compete for the same budgets, and the scheduler starts earlier stages' units first) at the
    rate that endpoint has served so far; the stage ends when its slowest endpoint is through. Calls that running
    units have already made are taken off in proportion to their share of the running units' projected calls."""
    order = list(snap.stages)
    rates = {n: e.calls / snap.elapsed_s for n, e in snap.endpoints.items() if e.calls and snap.elapsed_s > 1}
    finished = {n: 0 for n in snap.endpoints}
    running_proj: dict[str, dict[str, int]] = {}  # endpoint -> stage -> projected calls of running units
    pending_proj: dict[str, dict[str, int]] = {}  # endpoint -> stage -> projected calls of unfinished units
    for u in graph.units.values():
        done = u.id in results
        for name, n in u.calls.items():
            if done:
                finished[name] = finished.get(name, 0) + n
                continue
            pending_proj.setdefault(name, {}).setdefault(u.stage, 0)
            pending_proj[name][u.stage] += n
            if u.id in snap.running:
                running_proj.setdefault(name, {}).setdefault(u.stage, 0)
                running_proj[name][u.stage] += n
    for i, stage in enumerate(order):
        c = snap.stages[stage]
        if c.ended_s is not None:
            continue
        upto = set(order[: i + 1])
        etas = []
        for name, per_stage in pending_proj.items():
            if name not in rates:
                continue
            made = max(0, snap.endpoints[name].calls - finished.get(name, 0))  # by the running units
            run_total = sum(running_proj.get(name, {}).values())
            run_upto = sum(n for s_, n in running_proj.get(name, {}).items() if s_ in upto)
            remaining = sum(n for s_, n in per_stage.items() if s_ in upto)
            remaining -= made * run_upto / run_total if run_total else 0
            etas.append(max(0.0, remaining) / rates[name])
        if etas:
            c.eta_s = max(etas)


def render(snap: Snapshot) -> str:
    """A few plain lines: per stage done/running/waiting/failed, per endpoint calls, elapsed and projected."""
    def clock(s: float) -> str:
        s = int(s)
        return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"

    proj = f", projected {clock(snap.projected_s)}" if snap.projected_s else ""
    lines = [f"study progress: elapsed {clock(snap.elapsed_s)}{proj}"]
    for stage, c in snap.stages.items():
        if c.ended_s is not None:
            timing = f"  ended after {clock(c.ended_s - (c.started_s or 0.0))}"
        elif c.started_s is not None:
            timing = f"  elapsed {clock(snap.elapsed_s - c.started_s)}" + (f", ETA {clock(c.eta_s)}"
                                                                           if c.eta_s is not None else "")
        else:
            timing = f"  ETA {clock(c.eta_s)}" if c.eta_s is not None else ""
        lines.append(f"  {stage:22s} {c.done:4d}/{c.total:<4d} done  {c.running:3d} running  {c.waiting:4d} waiting"
                     + (f"  {c.failed} failed" if c.failed else "") + timing)
    for name, e in sorted(snap.endpoints.items()):
        if e.calls or e.projected:
            proj_calls = f"/~{e.projected}" if e.projected else ""
            lines.append(f"  endpoint {name}: {e.calls}{proj_calls} calls, {e.in_flight}/{e.limit or '?'} in flight")
    return "\n".join(lines)

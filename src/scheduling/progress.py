"""One progress model for a whole study: units done / running / waiting per stage, calls per endpoint, elapsed and
projected time; and a plain-text renderer. Executors feed it (started / finished); views read snapshots."""

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
        self.results: dict[str, UnitResult] = {}

    def started(self, unit_id: str) -> None:
        with self._lock:
            self._running[unit_id] = time.monotonic()

    def finished(self, unit_id: str, result: UnitResult) -> None:
        with self._lock:
            self._running.pop(unit_id, None)
            self.results[unit_id] = result

    def snapshot(self) -> Snapshot:
        with self._lock:
            running, results = dict(self._running), dict(self.results)
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
        snap.projected_s = _projection(snap)
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


def render(snap: Snapshot) -> str:
    """A few plain lines: per stage done/running/waiting/failed, per endpoint calls, elapsed and projected."""
    def clock(s: float) -> str:
        s = int(s)
        return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"

    proj = f", projected {clock(snap.projected_s)}" if snap.projected_s else ""
    lines = [f"study progress: elapsed {clock(snap.elapsed_s)}{proj}"]
    for stage, c in snap.stages.items():
        lines.append(f"  {stage:22s} {c.done:4d} done  {c.running:3d} running  {c.waiting:4d} waiting"
                     + (f"  {c.failed} failed" if c.failed else ""))
    for name, e in sorted(snap.endpoints.items()):
        if e.calls or e.projected:
            proj_calls = f"/~{e.projected}" if e.projected else ""
            lines.append(f"  endpoint {name}: {e.calls}{proj_calls} calls, {e.in_flight}/{e.limit or '?'} in flight")
    return "\n".join(lines)

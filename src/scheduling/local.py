"""The local executor: runs a unit graph in this process, every unit whose inputs exist at once (up to a bound),
each on its own thread; the endpoint budgets (src.backends.endpoints) decide how many requests reach each backend."""

from __future__ import annotations

import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable

from src.errors import UserError
from src.scheduling.graph import Unit, UnitGraph, UnitResult
from src.scheduling.progress import StudyProgress, render

DEFAULT_MAX_UNITS = 32  # units in flight: enough to keep every endpoint's budget full, few enough threads


class LocalExecutor:
    """Start a unit when every unit it needs has finished; prefer the unit whose endpoints have the fewest units
    running (so every backend is kept busy), then the earlier stage."""

    def __init__(self, max_units: int = DEFAULT_MAX_UNITS, report_every_s: float = 30.0,
                 report: Callable[[str], None] | None = None) -> None:
        self.max_units = max(1, max_units)
        self.report_every_s = report_every_s
        self.report = report or (lambda text: print(text, file=sys.stderr, flush=True))

    def run(self, graph: UnitGraph, progress: StudyProgress | None = None) -> dict[str, UnitResult]:
        progress = progress or StudyProgress(graph)
        results: dict[str, UnitResult] = {}
        waiting = list(graph.units.values())
        running: dict[str, Unit] = {}
        done: queue.SimpleQueue[tuple[Unit, UnitResult]] = queue.SimpleQueue()
        order = {u.id: i for i, u in enumerate(graph.units.values())}
        last_report = time.monotonic()

        def work(unit: Unit) -> None:
            done.put((unit, run_one(unit)))

        while waiting or running:
            for unit in [u for u in waiting if graph.ready(u, results)]:
                blocker = graph.blocked_by(unit, results)
                if blocker is not None:
                    waiting.remove(unit)
                    r = UnitResult("failed", f"not run: {blocker} failed", f"its input {blocker} failed")
                    results[unit.id] = r
                    progress.finished(unit.id, r)
            ready = [u for u in waiting if graph.ready(u, results)]
            while ready and len(running) < self.max_units:
                load: dict[str, int] = {}
                for r in running.values():
                    for name in r.calls:
                        load[name] = load.get(name, 0) + 1
                unit = min(ready, key=lambda u: (max((load.get(n, 0) for n in u.calls), default=0), order[u.id]))
                ready.remove(unit)
                waiting.remove(unit)
                running[unit.id] = unit
                progress.started(unit.id)
                threading.Thread(target=work, args=(unit,), name=f"ia-unit-{unit.id}", daemon=True).start()
            if not running:
                if waiting:  # cannot happen with a graph built by UnitGraph.add; never spin
                    raise RuntimeError(f"units can never start: {[u.id for u in waiting]}")
                break
            try:
                unit, result = done.get(timeout=1.0)
                running.pop(unit.id, None)
                results[unit.id] = result
                progress.finished(unit.id, result)
            except queue.Empty:
                pass
            if self.report_every_s and time.monotonic() - last_report >= self.report_every_s:
                last_report = time.monotonic()
                self.report(render(progress.snapshot()))
        return results


def run_one(unit: Unit) -> UnitResult:
    """Run a unit; a UserError is its one-line failure, any other exception a failure with its traceback shown
    (a bug must not stop the other units, nor pass unnoticed)."""
    t0 = time.time()
    try:
        result = unit.run()
    except UserError as exc:
        result = UnitResult("failed", str(exc), getattr(exc, "cause", str(exc)))
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc(file=sys.stderr)
        result = UnitResult("failed", f"{type(exc).__name__}: {exc}", f"internal error in {unit.id}")
    if not result.wall_s:
        result.wall_s = time.time() - t0
    return result

"""The unit graph: every unit of a study (a baseline, a seed of an optimization, an optimized eval, ...) as a node
that names the units whose results it needs, the endpoints it will call and how often."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

@dataclass
class UnitResult:
    """What one unit did: ran | reused | failed (with a one-line message and its cause)."""

    status: str
    message: str = ""
    cause: str = ""
    wall_s: float = 0.0


@dataclass
class Unit:
    """One independent, idempotent job whose result is a file.

    `requires`: units that must have succeeded (their output is this unit's input); `after`: units that must have
    finished, whatever their outcome (an optimization's best-seed choice runs after every seed, failed ones
    included). `calls`: projected LM requests per endpoint name (src.backends.endpoints)."""

    id: str
    stage: str
    run: Callable[[], UnitResult]
    requires: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    calls: dict[str, int] = field(default_factory=dict)
    model: str = ""
    task: str = ""
    label: str = ""  # how summaries name it ("llama3.2 x math", as the stage runners' ledgers do); default: id
    # the evaluation CSVs the unit leaves, for the per-stage findings (None: the study derives them from the id)
    results: Callable[[], list[Path]] | None = None

    @property
    def deps(self) -> tuple[str, ...]:
        return self.requires + self.after


class UnitGraph:
    """Units in the order they were added (the stage order), each dependency checked to exist and precede."""

    def __init__(self) -> None:
        self.units: dict[str, Unit] = {}

    def add(self, unit: Unit) -> Unit:
        if unit.id in self.units:
            raise ValueError(f"duplicate unit {unit.id}")
        missing = [d for d in unit.deps if d not in self.units]
        if missing:  # dependencies are added first, so the graph is acyclic by construction
            raise ValueError(f"unit {unit.id} depends on unknown unit(s) {missing}")
        self.units[unit.id] = unit
        return unit

    def stages(self) -> list[str]:
        return list(dict.fromkeys(u.stage for u in self.units.values()))

    def blocked_by(self, unit: Unit, results: dict[str, UnitResult]) -> str | None:
        """The first required unit that failed, or None."""
        return next((d for d in unit.requires if d in results and results[d].status == "failed"), None)

    def ready(self, unit: Unit, results: dict[str, UnitResult]) -> bool:
        return all(d in results for d in unit.deps)

    def projected_calls(self) -> dict[str, int]:
        """Projected LM requests per endpoint over the whole graph."""
        out: dict[str, int] = {}
        for u in self.units.values():
            for name, n in u.calls.items():
                out[name] = out.get(name, 0) + n
        return out

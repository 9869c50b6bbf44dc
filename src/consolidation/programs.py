"""Optimization sidecars (optimized_programs/*.meta.json) as consolidation inputs, and the demo counts they record."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from src.results.naming import parse_program_name, programs_dir
from src.results.schema import ProgramInfo, ProgramMeta

META_SUFFIX = ".meta.json"


@dataclass
class ProgramSidecar:
    """One optimization unit's sidecar, with the model/task/optimizer it belongs to (from its fields or its name)."""

    path: Path
    model: str
    task: str
    optimizer: str | None
    meta: ProgramMeta

    @property
    def stem(self) -> str:
        return self.path.name[: -len(META_SUFFIX)]

    @property
    def max_demos(self) -> int | None:
        """Most demos the budget allows: (max bootstrapped + max labeled) x predictors; None when unknown."""
        key = {"mipro_v2": "mipro", "miprov2": "mipro", "bootstrap_rs": "bootstrap_rs"}.get(
            str(self.optimizer or "").lower())
        cfg = self.meta.budgets.get(key) if key else None
        if not isinstance(cfg, dict):
            legacy = self.meta.extra.get("max_demos")  # a field some hand-made sidecars carry
            return legacy if isinstance(legacy, int) else None
        try:
            per = int(cfg.get("max_bootstrapped_demos") or 0) + int(cfg.get("max_labeled_demos") or 0)
        except (TypeError, ValueError):
            return None
        return per * (len(self.meta.predictors) or 1)


def load_programs(results_dir: Path, *, tasks: Iterable[str], optimizers: Iterable[str],
                  notes: list[str]) -> dict[tuple[str, str], list[ProgramSidecar]]:
    """Every optimization sidecar keyed by (model, task); unreadable ones or ones naming no model/task are notes.

    A sidecar lacking its model/task fields (older or hand-made) is placed by its file name, parsed against the
    known task keys and `optimizers` (plus its own optimizer field)."""
    out: dict[tuple[str, str], list[ProgramSidecar]] = defaultdict(list)
    folder = programs_dir(results_dir)
    if not folder.is_dir():
        return out
    tasks, optimizers = list(tasks), list(optimizers)
    for path in sorted(folder.glob("*" + META_SUFFIX)):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            notes.append(f"optimization sidecar `{path.name}` cannot be read ({exc}): ignored")
            continue
        meta = ProgramMeta.from_dict(data)
        model, task, optimizer = meta.model, meta.task, meta.optimizer
        if not (model and task):
            name = parse_program_name(path.name, tasks=tasks,
                                      optimizers=optimizers + ([optimizer] if optimizer else []))
            if name is not None:
                model, task, optimizer = model or name.model, task or name.task, optimizer or name.optimizer
        if not (model and task):
            notes.append(f"optimization sidecar `{path.name}` names no model/task: ignored")
            continue
        out[(model, task)].append(ProgramSidecar(path, model, task, optimizer, meta))
    return out


def pick_program(cands: list[ProgramSidecar], evaluated: ProgramInfo | None) -> ProgramSidecar | None:
    """The sidecar of the program an optimized arm evaluated: by its optimizer, else its program file, else the
    only candidate."""
    if not cands:
        return None
    if evaluated is not None:
        if evaluated.optimizer:
            match = [c for c in cands if str(c.optimizer) == evaluated.optimizer]
            if len(match) == 1:
                return match[0]
        if evaluated.file:
            want = Path(evaluated.file).name.rsplit(".", 1)[0]
            match = [c for c in cands if c.stem == want]
            if len(match) == 1:
                return match[0]
    return cands[0] if len(cands) == 1 else None


# ---- demo counts ---------------------------------------------------------------------------------------------------

@dataclass
class DemoCount:
    """One optimization sidecar's row of the demo-count table."""

    model: str
    task: str
    program: ProgramSidecar
    n_demos: int | None
    max_demos: int | None
    seeds_ok: int
    evaluated: bool  # the sidecar of an optimized arm in the results


@dataclass
class DemoCounts:
    rows: list[DemoCount]
    programs: list[tuple[int, int | None]]  # (demos kept, max possible) of every successful program
    n_zero: int = 0
    n_full: int = 0  # kept the maximum its budget allows (or the largest count seen where unknown)
    n_between: int = 0


def demo_counts(programs: dict[tuple[str, str], list[ProgramSidecar]],
                evaluated: dict[tuple[str, str], ProgramSidecar | None]) -> DemoCounts:
    """The demo counts chosen per program, and whether they follow the '0 or max, never in between' pattern.

    `evaluated` maps (model, task) of each optimized arm in the results to the sidecar it was matched to."""
    rows, kept = [], []
    for (m, t), cands in sorted(programs.items()):
        for ps in cands:
            n_demos, top = ps.meta.demo_count, ps.max_demos
            if n_demos is not None and ps.meta.status in (None, "ok"):
                kept.append((n_demos, top))
            rows.append(DemoCount(m, t, ps, n_demos, top, sum(1 for x in ps.meta.seeds if x.status == "ok"),
                                  (m, t) in evaluated and evaluated[(m, t)] is ps))
    out = DemoCounts(rows, kept)
    if kept:
        seen_max = max(n for n, _ in kept)
        out.n_zero = sum(1 for n, _ in kept if n == 0)
        out.n_full = sum(1 for n, top in kept if n > 0 and n == (top if top is not None else seen_max))
        out.n_between = len(kept) - out.n_zero - out.n_full
    return out

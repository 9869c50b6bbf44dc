"""Checkpoint identity: may a unit's existing result files be reused, must they be refused, or replaced?

One rule for every unit of work (evaluation units, optimization units and their seeds, demo-curve conditions,
tipping-point cells). A unit stores the identity it was made under (its header: model, task, arm, adapter,
program, data, DSPy version ...) beside its result. When the unit runs again:

- same identity: what exists is reused, what is missing is resumed;
- `--force`: the unit's files are archived under <results-dir>/.archive/ (never deleted) and it starts afresh;
- a complete result made under a larger generation cap only: reused as it is (made_under_larger_cap);
- another identity, or result files that record none: refused with the differences named (policy REFUSE), unless
  the unit belongs to a parent unit whose own identity already decided (policy REPLACE): then they are archived
  and the unit is redone.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from src.errors import UserError
from src.results.files import archive

REFUSE = "refuse"
REPLACE = "replace"


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """'key=old (now new)' for every field of `new` whose value differs in `old`."""
    return [f"{k}={old.get(k)!r} (now {new.get(k)!r})" for k in new if old.get(k) != new.get(k)]


def made_under_larger_cap(stored: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    """Was `stored` made under the same identity as `wanted` except a larger generation cap (max_tokens)?

    A *complete* result of that kind is reused as it is, under its own recorded identity: nothing is generated, so no
    example mixes caps, and its sidecar keeps saying which cap it was made under. (Results made before per-task
    generation bounds existed are such results.) A partial one is refused like any other identity change: finishing
    it under the smaller cap would mix two caps in one unit."""
    if stored is None:
        return False
    others = {k for k in set(stored) | set(wanted) if k != "max_tokens"}
    if any(stored.get(k) != wanted.get(k) for k in others):
        return False
    old, new = stored.get("max_tokens"), wanted.get("max_tokens")
    return isinstance(old, int) and isinstance(new, int) and old > new


def claim(stored: Mapping[str, Any] | None, wanted: Mapping[str, Any], files: Sequence[Path], *, results_dir: Path,
          force: bool, what: Path | str, on_stale: str = REFUSE, evidence: Sequence[Path] | None = None) -> bool:
    """True when the stored result was made under `wanted` (reuse it, resume what is missing); False when the unit
    starts afresh (after archiving any old files). Raises UserError for stale results under policy REFUSE.

    `files` are everything the unit owns (archived together); `evidence` are the files whose presence without a
    stored identity means results of unknown origin (default: `files`).
    """
    existing = [p for p in files if p.exists()]
    if force:
        _archive(existing, results_dir, what)
        return False
    if stored is not None and dict(stored) == dict(wanted):
        return True
    if stored is None:
        if not any(p.exists() for p in (files if evidence is None else evidence)):
            return False
        stale = "exist but record no settings (made elsewhere or by hand)"
    else:
        stale = "were made with " + ", ".join(differences(stored, wanted))
        if stored.get("max_tokens") != wanted.get("max_tokens") and "max_tokens" in wanted:
            stale += (" (a generation cap differs: since per-task generation bounds, embedded models answer each "
                      "task under a cap derived from its gold answers, so partial results of an older version "
                      "cannot be completed under the new cap)")
    if on_stale == REFUSE:
        raise UserError(f"{what}: existing results {stale}; pass --force to replace them (the old files are archived "
                        f"under {results_dir / '.archive'}) or choose another --results-dir")
    _archive(existing, results_dir, what)
    return False


def _archive(paths: list[Path], results_dir: Path, what: Path | str) -> None:
    moved = archive(paths, results_dir)
    if moved:
        name = what.name if isinstance(what, Path) else what
        print(f"  archived previous results of {name} to {moved}", file=sys.stderr)

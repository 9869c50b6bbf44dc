"""Which results may be compared: DSPy versions, data sources, eval splits and example sets that differ."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from src.consolidation.inputs import Inputs, Unit


def _grouped(units: list[Unit], key: Callable[[Unit], Any]) -> dict[Any, list[str]]:
    g: dict[Any, list[str]] = defaultdict(list)
    for u in units:
        v = key(u)
        if v is not None:
            g[v].append(u.name)
    return g


def _listing(g: dict[Any, list[str]], fmt: Callable[[Any], str] = str) -> str:
    """Smaller groups first, each file named; the largest group by count when it has more than 3 files."""
    groups = sorted(g.items(), key=lambda kv: (len(kv[1]), fmt(kv[0])))
    parts = []
    for i, (v, names) in enumerate(groups):
        if i == len(groups) - 1 and len(names) > 3:
            parts.append(f"{fmt(v)}: the other {len(names)} file(s)")
        else:
            parts.append(f"{fmt(v)}: {', '.join(f'`{n}`' for n in names)}")
    return "; ".join(parts)


def comparability(inputs: Inputs) -> list[str]:
    """One line per problem: DSPy versions, data sources, eval splits or example sets that differ."""
    issues: list[str] = []
    g = _grouped(inputs.units, lambda u: u.meta.dspy_version)
    if len(g) > 1:
        issues.append(f"DSPy versions differ — {_listing(g)}")
    for u in inputs.units:
        saved, used = u.meta.program.saved_dspy, u.meta.dspy_version
        if u.meta.program.version_mismatch or (saved and used and saved != used):
            issues.append(f"`{u.name}`: its program was saved under DSPy {saved or '?'} and evaluated under "
                          f"DSPy {used or '?'}")
    for t in inputs.tasks:
        tu = [u for u in inputs.units if u.task == t]
        g = _grouped(tu, lambda u: u.meta.data_source)
        if len(g) > 1:
            issues.append(f"task {t}: datasets differ (data_source) — {_listing(g)}")
        g = _grouped(tu, lambda u: u.meta.eval_fingerprint)
        if len(g) > 1:
            issues.append(f"task {t}: eval splits differ (eval_fingerprint) — {_listing(g, lambda v: str(v)[:12])}")
        g = _grouped(tu, lambda u: frozenset(u.ids))
        if len(g) > 1:
            issues.append(f"task {t}: eval example sets differ — {_listing(g, lambda v: f'{len(v)} examples')} "
                          f"(paired comparisons use only the shared ids; unpaired scores cover different examples)")
        else:
            g = _grouped(tu, lambda u: u.meta.examples.fingerprint)
            if len(g) > 1:
                issues.append(f"task {t}: same example ids but different example content (examples.fingerprint) — "
                              f"{_listing(g, lambda v: str(v)[:12])}")
    return issues

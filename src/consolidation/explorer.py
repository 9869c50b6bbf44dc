"""What the explorable report needs beyond the tables, computed from the Analysis: every evaluated example (inputs,
prediction, gold, score, secondary metrics, latency, tokens, status) and each optimized program beside its baseline
(instructions, demos, every seed's dev score).

Plain JSON-ready data only; src.report.explorer renders it. Texts are already scrubbed of secrets when recorded.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.results.record import Record

if TYPE_CHECKING:
    from src.consolidation.analysis import Analysis
    from src.consolidation.programs import ProgramSidecar

TEXT_CHARS = 1500  # per shown text in the page: enough to judge an example, bounded for 10,000-example studies
MAX_DEMOS_SHOWN = 8


def _num(x: Any) -> float | None:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) or math.isinf(value) else round(value, 6)


def _cut(text: str, limit: int = TEXT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f" [... {len(text) - limit} more characters]"


def status(rec: Record) -> str:
    """correct | wrong | parse | error: what the browser filters by."""
    if rec.error:
        return "error"
    if rec.parse_failure:
        return "parse"
    return "correct" if rec.is_correct else "wrong"


def _inputs(rec: Record) -> dict[str, str]:
    try:
        value = json.loads(rec.inputs or "{}")
    except ValueError:
        return {}
    return {str(k): _cut(str(v)) for k, v in value.items()} if isinstance(value, dict) else {}


def example_rows(analysis: Analysis) -> list[dict[str, Any]]:
    """One row per recorded example of every unit, in the report's order (compact keys: the page embeds them)."""
    rows = []
    units = sorted(analysis.inputs.units, key=lambda u: analysis.order((u.arm, u.model, u.task))
                   if (u.arm, u.model, u.task) in analysis.arms else (999, 999, 999))
    for u in units:
        for rec in u.records:
            extras = {k: v for k, v in rec.extras_dict.items() if isinstance(v, (int, float))}
            rows.append({
                "m": u.model, "t": u.task, "a": u.arm, "id": rec.example_id, "st": status(rec),
                "s": _num(rec.score), "x": extras, "in": _inputs(rec), "p": _cut(rec.prediction or ""),
                "g": _cut(rec.ground_truth or ""), "e": _cut(rec.error or "", 400), "ms": _num(rec.latency_ms),
                "ti": rec.input_tokens, "to": rec.output_tokens, "c": rec.lm_calls, "ch": rec.cache_hit,
            })
    return rows


def _saved_demos(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Demos per predictor from a saved DSPy program (its JSON state); {} when unreadable."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out: dict[str, list[dict[str, Any]]] = {}

    def walk(node: Any, name: str) -> None:
        if isinstance(node, dict):
            if "demos" in node and "signature" in node:
                demos = [d for d in node.get("demos") or [] if isinstance(d, dict)]
                out[name or "self"] = [{str(k): _cut(str(v), 600) for k, v in d.items() if not str(k).startswith(
                    ("augmented", "ia_"))} for d in demos[:MAX_DEMOS_SHOWN]]
                return
            for key, child in node.items():
                if key != "metadata":
                    walk(child, f"{name}.{key}" if name else key)

    walk(state, "")
    return out


def program_views(analysis: Analysis) -> list[dict[str, Any]]:
    """Each optimization unit that produced a program: baseline vs optimized instructions per predictor, the demos,
    the chosen seed and every seed's dev score."""
    views = []
    for (model, task), sidecars in analysis.inputs.programs.items():
        for side in sidecars:
            views.append(_program_view(model, task, side))
    views.sort(key=lambda v: (v["t"], v["m"], v["opt"] or ""))
    return views


def _program_view(model: str, task: str, side: ProgramSidecar) -> dict[str, Any]:
    meta = side.meta
    base = meta.extra.get("baseline_predictors") if isinstance(meta.extra.get("baseline_predictors"), dict) else {}
    program_file = side.path.with_name(side.stem + ".json")
    demos = _saved_demos(program_file) if program_file.is_file() else {}
    predictors = []
    for name, info in (meta.predictors or {}).items():
        info = info if isinstance(info, dict) else {}
        before = base.get(name, {}) if isinstance(base.get(name), dict) else {}
        predictors.append({"name": name, "before": before.get("instructions"), "after": info.get("instructions"),
                           "n_demos": info.get("n_demos"), "demos": demos.get(name) or demos.get("self") or []})
    return {
        "m": model, "t": task, "opt": side.optimizer, "status": meta.status, "reason": meta.reason,
        "teacher": meta.teacher, "preset": meta.preset, "chosen_seed": meta.chosen_seed,
        "dev": _num(meta.dev_score), "base_dev": _num(meta.baseline_dev_score),
        "seeds": [{"seed": s.seed, "status": s.status, "dev": _num(s.dev_score), "n_demos": s.n_demos,
                   "error": _cut(s.error or "", 300)} for s in meta.seeds],
        "predictors": predictors,
    }


def explorer_data(analysis: Analysis) -> dict[str, Any]:
    return {"examples": example_rows(analysis), "programs": program_views(analysis)}

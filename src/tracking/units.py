"""What an evaluation unit logs to MLflow: its identity and settings as parameters, its score with the 95% interval
(Wilson or bootstrap, as consolidation computes it), counts, tokens and $ as metrics, and its CSV and sidecar."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.results.files import read_csv
from src.results.naming import meta_path
from src.results.record import record_score
from src.results.schema import UnitMeta
from src.stats.comparison import Metric, score_interval
from src.tracking.mlflow_log import Tracker

if TYPE_CHECKING:
    from src.evaluation.unit import UnitSummary
    from src.registry import ModelSpec
    from src.tasks.base import Task


def unit_metrics(csv_path: Path, task: Task) -> dict[str, float]:
    """Score with its interval over the unit's examples (per-example means when it holds repeats), and counts."""
    recs = read_csv(csv_path) if csv_path.is_file() else []
    by_example: dict[str, list[Any]] = {}
    for r in recs:
        by_example.setdefault(r.example_id, []).append(r)
    repeats = max((len(v) for v in by_example.values()), default=1)
    if repeats > 1:
        scores = [record_score(v[0]) for v in by_example.values()]
        for s, v in zip(scores, by_example.values()):
            s.score = sum(r.score for r in v) / len(v)
        metric = Metric(False, lambda sc: sum(x.score for x in sc) / len(sc), True)
    else:
        scores = [record_score(r) for r in recs]
        metric = Metric.of(task)
    iv = score_interval(scores, metric)
    return {"score": iv.value, "score_ci_low": iv.lo, "score_ci_high": iv.hi, "n_examples": float(len(by_example)),
            "attempts": float(len(recs)), "parse_failures": float(sum(r.parse_failure for r in recs)),
            "errors": float(sum(1 for r in recs if r.error)), "input_tokens": float(sum(r.input_tokens for r in recs)),
            "output_tokens": float(sum(r.output_tokens for r in recs)),
            "cost_usd": float(sum(r.cost_usd for r in recs)), "cache_hits": float(sum(r.cache_hit for r in recs))}


def log_eval_unit(tracker: Tracker, summary: UnitSummary, task: Task, spec: ModelSpec) -> str | None:
    """One finished (or stopped, or failed) evaluation unit as one MLflow run."""
    if not tracker.enabled:
        return None
    side = meta_path(summary.csv)
    meta = UnitMeta.read(side) if side.is_file() else UnitMeta()
    params: dict[str, Any] = {**meta.unit, "model": spec.key, "task": task.key, "metric": task.spec.metric,
                              "repeats": meta.repeats, "concurrency": meta.concurrency}
    if meta.spend:
        params["max_cost_usd"] = meta.spend.get("max_cost_usd")
    metrics = unit_metrics(summary.csv, task) if summary.csv.is_file() else {}
    metrics["wall_s"] = summary.wall_s
    return tracker.log_unit(summary.csv.stem, params, metrics, [summary.csv, side],
                            {"status": summary.status, "message": summary.message[:500]})

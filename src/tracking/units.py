"""What an evaluation unit logs to MLflow: its identity and settings as parameters, its score with the 95% interval
(Wilson or bootstrap, as consolidation computes it), counts, tokens and $ as metrics, and its CSV and sidecar.

The studies' units follow the same conventions: a demo-curve condition is an evaluation unit (params `study`,
`condition`, `n_demos` added); a tipping-point cell is one run around its compile (DSPy's autolog, as an
optimization unit) and its evaluation, with the compile's cost as metrics and its checkpoint as an artifact."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.results.files import read_csv
from src.results.naming import meta_path
from src.results.record import record_score
from src.results.schema import TippingCheckpoint, UnitMeta
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


def _unit_params(csv_path: Path, task: Task, model: str) -> tuple[dict[str, Any], Path]:
    """An evaluation unit's parameters (its identity header and settings, from its sidecar) and the sidecar."""
    side = meta_path(csv_path)
    meta = UnitMeta.read(side) if side.is_file() else UnitMeta()
    params: dict[str, Any] = {**meta.unit, "model": model, "task": task.key, "metric": task.spec.metric,
                              "repeats": meta.repeats, "concurrency": meta.concurrency}
    if meta.spend:
        params["max_cost_usd"] = meta.spend.get("max_cost_usd")
    return params, side


def log_eval_unit(tracker: Tracker, summary: UnitSummary, task: Task, spec: ModelSpec, *, name: str | None = None,
                  params: dict[str, Any] | None = None) -> str | None:
    """One finished (or stopped, or failed) evaluation unit as one MLflow run (named after its CSV unless `name`;
    `params` add to its identity, e.g. a study's condition)."""
    if not tracker.enabled:
        return None
    unit_params, side = _unit_params(summary.csv, task, spec.key)
    metrics = unit_metrics(summary.csv, task) if summary.csv.is_file() else {}
    metrics["wall_s"] = summary.wall_s
    return tracker.log_unit(name or summary.csv.stem, {**unit_params, **(params or {})}, metrics, [summary.csv, side],
                            {"status": summary.status, "message": summary.message[:500]})


def log_tipping_cell(tracker: Tracker, ckpt_path: Path, task: Task, status: str) -> None:
    """Inside a tipping-point cell's run (the command opens it with Tracker.optimization_run around the cell): the
    evaluation's identity and settings (the checkpoint header first), its score with the interval (per-example
    means with repeats), the compile's LM calls, tokens and $, the cell's wall time; the evaluation CSV, its sidecar
    and the checkpoint (the compiled program) as artifacts."""
    if not tracker.enabled:
        return
    ck = TippingCheckpoint.read(ckpt_path)
    csv_path = Path(ck.csv)
    unit_params, side = _unit_params(csv_path, task, str(ck.header.get("model", "")))
    params = {**unit_params, **ck.header, "study": "tipping_point", "repeats": ck.repeats}
    metrics = unit_metrics(csv_path, task) if csv_path.is_file() else {}
    metrics.update({f"compile_{k}": ck.compile_cost.get(k) for k in ("lm_calls", "input_tokens", "output_tokens",
                                                                      "cost_usd")})
    metrics["wall_s"] = ck.wall_s
    tracker.log_active(params, metrics, [csv_path, side, ckpt_path], {"status": status})

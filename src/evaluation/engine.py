"""The evaluation engine every runner shares: a DSPy program over examples, concurrently, one record per example."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dspy
from dspy.utils.callback import BaseCallback
from dspy.utils.exceptions import AdapterParseError

from src.backends.adapters import estimate_tokens, thinking_traces
from src.backends.retry import RetryCount
from src.results.provenance import scrub
from src.results.record import Record, now_iso
from src.tasks.example import Score, outputs_of

if TYPE_CHECKING:
    from src.registry import ModelSpec
    from src.tasks.base import Task
    from src.tasks.example import TaskExample


@dataclass(frozen=True)
class EngineSettings:
    concurrency: int = 1
    progress: bool = True
    label: str = ""


class _CallCounter(BaseCallback):
    """Counts LM calls in one example (cache hits included: DSPy reports no usage for those)."""

    def __init__(self) -> None:
        self.calls = 0

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.calls += 1


def _usage_totals(tracker: Any) -> tuple[int, int, int]:
    """(input tokens, output tokens, calls that reported usage) summed over every model the example used."""
    tin = tout = calls = 0
    for entries in tracker.usage_data.values():
        for entry in entries:
            tin += int(entry.get("prompt_tokens") or 0)
            tout += int(entry.get("completion_tokens") or 0)
            calls += 1
    return tin, tout, calls


def _error_text(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return scrub(f"{type(exc).__name__}: {first}")[:300]


def evaluate_example(program: dspy.Module, example: TaskExample, task: Task, spec: ModelSpec, lm: dspy.LM,
                     adapter: dspy.Adapter, settings: EngineSettings, experiment_id: str, arm: str) -> Record:
    """Run one example to a Record; never raises for model or parse problems."""
    traces: list[str] = []
    counter = _CallCounter()
    pred = None
    parse_failure = False
    error = ""
    raw = ""
    start = time.perf_counter()
    tin = tout = reported = 0
    # Transient backend failures are retried per request by the model's RetryPolicy (src.backends.retry), inside
    # the LM; what reaches this point has failed for good, and the retries it took are counted here.
    token = thinking_traces.set(traces)
    try:
        with RetryCount() as retries:
            try:
                with dspy.context(lm=lm, adapter=adapter, callbacks=[counter]), dspy.track_usage() as tracker:
                    try:
                        pred = program(**example.inputs)
                    finally:
                        tin, tout, reported = _usage_totals(tracker)
            except AdapterParseError as exc:
                parse_failure = True
                raw = str(getattr(exc, "lm_response", "") or "")
            except Exception as exc:  # noqa: BLE001 - any backend failure becomes a recorded error
                error = _error_text(exc)
    finally:
        thinking_traces.reset(token)
    latency_ms = (time.perf_counter() - start) * 1000
    calls = counter.calls - retries.retries  # the callback fires once per attempt
    if pred is not None:
        score = task.score(example, outputs_of(pred, task.output_fields))
    else:
        # No prediction is a miss, never a lucky empty answer; scoring the empty prediction keeps the counts a
        # corpus metric needs (NER micro-F1 must count the gold entities this example failed to find).
        empty = task.score(example, {k: None for k in task.output_fields})
        score = Score(0.0, False, scrub(raw)[:2000], {**empty.extras, "no_prediction": 1.0})
    return Record(
        experiment_id=experiment_id, model=spec.key, task=task.key, phase=arm, example_id=example.id,
        prediction=score.prediction, ground_truth=example.gold_text, score=round(score.score, 6),
        is_correct=int(score.correct), parse_failure=int(parse_failure), error=error,
        latency_ms=round(latency_ms, 1), input_tokens=tin, output_tokens=tout,
        thinking_tokens=sum(estimate_tokens(t) for t in traces), lm_calls=calls, retries=retries.retries,
        cost_usd=round(spec.cost_usd(tin, tout), 8), cache_hit=int(calls > 0 and reported < calls),
        extras=json.dumps(score.extras, sort_keys=True), timestamp=now_iso(),
    )


def evaluate(program: dspy.Module, examples: list[TaskExample], task: Task, spec: ModelSpec, lm: dspy.LM,
             adapter: dspy.Adapter, settings: EngineSettings, experiment_id: str, arm: str,
             on_record: Callable[[Record], None]) -> list[Record]:
    """Evaluate examples concurrently; on_record is called (serially) as each one finishes."""
    if not examples:
        return []
    out: list[Record] = []
    lock = threading.Lock()
    bar = _progress(len(examples), settings)

    def run(ex: TaskExample) -> Record:
        return evaluate_example(program, ex, task, spec, lm, adapter, settings, experiment_id, arm)

    workers = max(1, min(settings.concurrency, len(examples)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ia-eval") as pool:
        futures = [pool.submit(run, ex) for ex in examples]
        try:
            for fut in as_completed(futures):
                rec = fut.result()
                with lock:
                    on_record(rec)
                    out.append(rec)
                    if bar:
                        bar.update(1)
                        bar.set_postfix_str(f"score={sum(r.score for r in out) / len(out):.3f}", refresh=False)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
        finally:
            if bar:
                bar.close()
    return out


def _progress(total: int, settings: EngineSettings):
    if not settings.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=settings.label or "eval", unit="ex", file=sys.stderr, leave=False,
                dynamic_ncols=True, mininterval=0.5)

"""The evaluation engine every runner shares: a DSPy program over examples, concurrently, one record per example,
each example bounded in wall-clock time."""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dspy
from dspy.utils.exceptions import AdapterParseError

from src.backends.adapters import estimate_tokens, thinking_traces
from src.backends.failures import SEPARATOR, error_text
from src.backends.metering import lm_attempts
from src.backends.retry import RetryCount, retry_policy_of
from src.results.provenance import scrub
from src.results.record import Record, inputs_json, now_iso
from src.tasks.example import Score, outputs_of

if TYPE_CHECKING:
    from src.registry import ModelSpec
    from src.tasks.base import Task
    from src.tasks.example import TaskExample


_POLL_S = 1.0  # how often the loop looks at deadlines while no example finishes


@dataclass(frozen=True)
class EngineSettings:
    concurrency: int = 1
    progress: bool = True
    label: str = ""
    deadline_s: float | None = None  # wall-clock bound on one example's prediction; None: from the LM's policy
    stop: Callable[[], bool] | None = None  # True: start no further example (the spending cap was reached)


class _CallCounter:
    """Counts LM requests in one example, each attempt and cache hits included (DSPy reports no usage for those);
    the example's MeteredLM counts them through src.backends.metering.lm_attempts."""

    def __init__(self) -> None:
        self.sink = [0]

    @property
    def calls(self) -> int:
        return self.sink[0]


def _usage_totals(tracker: Any) -> tuple[int, int, int]:
    """(input tokens, output tokens, calls that reported usage) summed over every model the example used."""
    tin = tout = calls = 0
    for entries in tracker.usage_data.values():
        for entry in entries:
            tin += int(entry.get("prompt_tokens") or 0)
            tout += int(entry.get("completion_tokens") or 0)
            calls += 1
    return tin, tout, calls


def example_calls(program: dspy.Module, adapter: dspy.Adapter) -> int:
    """The most LM requests one example can make: one per predictor, two where the chat adapter falls back to
    JSON after a reply it cannot parse."""
    # JSONAdapter inherits the flag from ChatAdapter but never falls back (DSPy's ChatAdapter.__call__)
    fallback = isinstance(adapter, dspy.ChatAdapter) and not isinstance(adapter, dspy.JSONAdapter) and \
        bool(getattr(adapter, "use_json_adapter_fallback", False))
    return max(1, len(program.predictors())) * (2 if fallback else 1)


def example_deadline_s(program: dspy.Module, adapter: dspy.Adapter, lm: dspy.LM) -> float:
    """The wall-clock bound on one example's prediction, from the LM's retry policy (src.backends.retry)."""
    return retry_policy_of(lm).example_deadline_s(example_calls(program, adapter))


@dataclass
class _Progress:
    """What an example has done so far, readable by the engine while the example runs on its worker thread."""

    calls: _CallCounter = field(default_factory=lambda: _CallCounter())
    retries: list[int] = field(default_factory=lambda: [0])
    predicted: bool = False  # the program returned (or failed): scoring has its own bounds


def evaluate_example(program: dspy.Module, example: TaskExample, task: Task, spec: ModelSpec, lm: dspy.LM,
                     adapter: dspy.Adapter, settings: EngineSettings, experiment_id: str, arm: str,
                     progress: _Progress | None = None, repeat: int = 0) -> Record:
    """Run one example to a Record; never raises for model or parse problems."""
    progress = progress or _Progress()
    traces: list[str] = []
    counter = progress.calls
    pred = None
    parse_failure = False
    error = ""
    raw = ""
    start = time.perf_counter()
    tin = tout = reported = 0
    # Transient backend failures are retried per request by the model's RetryPolicy (src.backends.retry), inside
    # the LM; what reaches this point has failed for good, and the retries it took are counted here.
    token = thinking_traces.set(traces)
    counting = lm_attempts.set(counter.sink)
    try:
        with RetryCount(progress.retries) as retries:
            try:
                with dspy.context(lm=lm, adapter=adapter), dspy.track_usage() as tracker:
                    try:
                        pred = program(**example.inputs)
                    finally:
                        tin, tout, reported = _usage_totals(tracker)
            except AdapterParseError as exc:
                parse_failure = True
                raw = str(getattr(exc, "lm_response", "") or "")
            except Exception as exc:  # noqa: BLE001 - any backend failure becomes a recorded error
                error = scrub(error_text(exc, getattr(lm, "endpoint", None)))[:300]
            finally:
                progress.predicted = True
    finally:
        lm_attempts.reset(counting)
        thinking_traces.reset(token)
    latency_ms = (time.perf_counter() - start) * 1000
    calls = counter.calls - retries.retries  # counted once per attempt
    if pred is not None:
        score = task.score(example, outputs_of(pred, task.output_fields))
    else:
        score = _no_prediction(task, example, raw)
    return Record(
        experiment_id=experiment_id, model=spec.key, task=task.key, phase=arm, example_id=example.id,
        prediction=scrub(score.prediction), ground_truth=example.gold_text, score=round(score.score, 6),
        is_correct=int(score.correct), parse_failure=int(parse_failure), error=error,
        latency_ms=round(latency_ms, 1), input_tokens=tin, output_tokens=tout,
        thinking_tokens=sum(estimate_tokens(t) for t in traces), lm_calls=calls, retries=retries.retries,
        cost_usd=round(spec.cost_usd(tin, tout), 8), cache_hit=int(calls > 0 and reported < calls),
        extras=json.dumps(score.extras, sort_keys=True), timestamp=now_iso(), repeat=repeat,
        inputs=scrub(inputs_json(example.inputs)),
    )


def _no_prediction(task: Task, example: TaskExample, raw: str) -> Score:
    # No prediction is a miss, never a lucky empty answer; scoring the empty prediction keeps the counts a corpus
    # metric needs (NER micro-F1 must count the gold entities this example failed to find).
    empty = task.score(example, {k: None for k in task.output_fields})
    return Score(0.0, False, scrub(raw)[:2000], {**empty.extras, "no_prediction": 1.0})


def overrun_record(example: TaskExample, task: Task, spec: ModelSpec, lm: dspy.LM, experiment_id: str, arm: str,
                   deadline_s: float, progress: _Progress, repeat: int = 0) -> Record:
    """The record of an example abandoned at its deadline: an error (so the next run retries it), never a score."""
    score = _no_prediction(task, example, "")
    retries = progress.retries[0]
    endpoint = getattr(lm, "endpoint", None)
    where = f" from {endpoint.url}" if endpoint is not None else ""
    return Record(
        experiment_id=experiment_id, model=spec.key, task=task.key, phase=arm, example_id=example.id,
        prediction="", ground_truth=example.gold_text, score=0.0, is_correct=0, parse_failure=0,
        error=f"timed out after {deadline_s:g} s without a complete reply{where}{SEPARATOR}ExampleDeadline: the "
              f"bound is every attempt of every call at the request timeout, plus backoff (src.backends.retry)",
        latency_ms=round(deadline_s * 1000, 1), lm_calls=max(0, progress.calls.calls - retries), retries=retries,
        extras=json.dumps(score.extras, sort_keys=True), timestamp=now_iso(), repeat=repeat,
        inputs=scrub(inputs_json(example.inputs)),
    )


@dataclass
class _Job:
    example: TaskExample
    started: float
    progress: _Progress
    repeat: int = 0


def evaluate(program: dspy.Module, examples: list[TaskExample], task: Task, spec: ModelSpec, lm: dspy.LM,
             adapter: dspy.Adapter, settings: EngineSettings, experiment_id: str, arm: str,
             on_record: Callable[[Record], None], repeats: list[int] | None = None,
             lm_for: Callable[[int], dspy.LM] | None = None) -> list[Record]:
    """Evaluate examples concurrently; on_record is called (serially, on the calling thread) as each one finishes.

    Each example runs on its own daemon thread, at most `settings.concurrency` at once. One whose prediction has not
    returned by its deadline (settings.deadline_s, else the LM's retry policy: src.backends.retry) is abandoned:
    recorded as an error `timed out after N s` (retried by the next run) and its slot given to the next example.
    Only this loop hands records to `on_record`, and only for examples it has not abandoned, so an abandoned worker
    that answers late - or never - cannot append to a journal or block the process from exiting.

    `repeats` (aligned with `examples`, which may then hold an example several times) numbers each attempt
    (--repeats); attempt r is asked of `lm_for(r)` and recorded with repeat = r.
    """
    if not examples:
        return []
    deadline = settings.deadline_s or example_deadline_s(program, adapter, lm)
    out: list[Record] = []
    done: queue.SimpleQueue[tuple[_Job, Record | BaseException]] = queue.SimpleQueue()
    attempts = repeats if repeats is not None else [0] * len(examples)
    lms = {r: (lm_for(r) if lm_for is not None else lm) for r in set(attempts)}  # made here, not on worker threads
    pending = list(reversed(list(zip(examples, attempts))))
    running: dict[int, _Job] = {}
    bar = _progress(len(examples), settings)
    workers = max(1, min(settings.concurrency, len(examples)))

    def work(job: _Job) -> None:
        try:
            rec = evaluate_example(program, job.example, task, spec, lms[job.repeat], adapter, settings,
                                   experiment_id, arm, job.progress, job.repeat)
            done.put((job, rec))
        except BaseException as exc:  # noqa: BLE001 - a bug in scoring is raised on the calling thread
            done.put((job, exc))

    def accept(rec: Record) -> None:
        on_record(rec)
        out.append(rec)
        if bar:
            bar.update(1)
            bar.set_postfix_str(f"score={sum(r.score for r in out) / len(out):.3f}", refresh=False)

    def stopped() -> bool:
        return settings.stop is not None and settings.stop()

    try:
        # Examples not started when `stop` turns true are left unrecorded: the next run does them.
        while (pending and not stopped()) or running:
            while pending and len(running) < workers and not stopped():
                example, attempt = pending.pop()
                job = _Job(example, time.monotonic(), _Progress(), attempt)
                running[id(job)] = job
                threading.Thread(target=work, args=(job,), name=f"ia-eval-{job.example.id}", daemon=True).start()
            due = [job.started + deadline for job in running.values() if not job.progress.predicted]
            wait = (min(due) - time.monotonic()) if due else _POLL_S
            try:
                job, result = done.get(timeout=max(0.0, min(wait, _POLL_S)))
                if running.pop(id(job), None) is not None:  # else: a late answer from an abandoned example
                    if isinstance(result, BaseException):
                        raise result
                    accept(result)
            except queue.Empty:
                pass
            now = time.monotonic()
            for key, job in list(running.items()):
                if not job.progress.predicted and now - job.started >= deadline:
                    del running[key]  # abandoned: whatever its thread does later is dropped
                    accept(overrun_record(job.example, task, spec, lm, experiment_id, arm, deadline, job.progress,
                                          job.repeat))
    finally:
        running.clear()
        if bar:
            bar.close()
    return out


def _progress(total: int, settings: EngineSettings):
    if not settings.progress:
        return None
    from tqdm.std import tqdm  # the class itself: src.commands.console switches off only the libraries' bars

    return tqdm(total=total, desc=settings.label or "eval", unit="ex", file=sys.stderr, leave=False,
                dynamic_ncols=True, mininterval=0.5)

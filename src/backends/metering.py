"""MeteredLM, the only LM class the backends hand out: a dspy.LM that counts calls and tokens across threads,
applies the retry policy (src.backends.retry) around every request, and sends each attempt through its endpoint
router (src.backends.endpoints: the endpoint's budget, and the choice among several endpoints)."""

from __future__ import annotations

import threading
import time
from typing import Any

import dspy

from src.backends.adapters import thinking_traces
from src.backends.endpoints import Router
from src.backends.failures import Endpoint
from src.backends.retry import RetryPolicy, note_retry


class Meter:
    """Running totals of an LM's calls and tokens, whichever thread made them.

    DSPy's usage tracker is copied into each worker thread of its parallel evaluator, so usage made inside an
    optimizer never reaches the caller's tracker; every call does pass through LM.update_history, which feeds this.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = self.input_tokens = self.output_tokens = self.cache_hits = 0

    def add(self, usage: dict[str, Any]) -> None:
        with self._lock:
            self.calls += 1
            if not usage:
                self.cache_hits += 1  # DSPy reports no usage for a response served from its cache
            self.input_tokens += int(usage.get("prompt_tokens") or 0)
            self.output_tokens += int(usage.get("completion_tokens") or 0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"lm_calls": self.calls, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                    "cache_hits": self.cache_hits}

    def __deepcopy__(self, memo: dict) -> Meter:
        return self  # copies of an LM (lm.copy, deepcopy of programs) keep counting into the same totals

    def __reduce__(self):
        return (Meter, ())


class MeteredLM(dspy.LM):
    """dspy.LM that keeps a Meter and retries transient failures by the model's RetryPolicy.

    DSPy's own retry loop is switched off (num_retries=0): this is the only place a request is re-sent, and each
    re-send is counted for the example that made it (src.backends.retry.RetryCount).
    """

    def __init__(self, *args: Any, retry: RetryPolicy | None = None, endpoint: Endpoint | None = None,
                 router: Router | None = None, **kwargs: Any) -> None:
        kwargs["num_retries"] = 0
        super().__init__(*args, **kwargs)
        self.meter = Meter()
        self.retry = retry or RetryPolicy()
        self.endpoint = endpoint  # where requests go and which variable holds the key, to phrase failures
        self.router = router  # the endpoint budgets every attempt waits for (None: unbudgeted, e.g. in tests)

    def update_history(self, entry: dict[str, Any]) -> None:
        self.meter.add(entry.get("usage") or {})
        super().update_history(entry)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        attempt = 0
        while True:
            try:
                if self.router is None:
                    return _collect_reasoning(super().__call__(*args, **kwargs))
                with self.router.route() as route:
                    return _collect_reasoning(super().__call__(*args, **_routed(kwargs, route.api_base)))
            except Exception as exc:
                if not self.retry.should_retry(exc, attempt):
                    raise
                note_retry()
                time.sleep(self.retry.delay_s(exc, attempt))
                attempt += 1

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        import asyncio

        attempt = 0
        while True:
            try:
                if self.router is None:
                    return _collect_reasoning(await super().acall(*args, **kwargs))
                route = await asyncio.to_thread(self.router.acquire)  # never block the event loop on a budget
                try:
                    result = await super().acall(*args, **_routed(kwargs, route.api_base))
                except BaseException as exc:
                    self.router.release(route, exc)
                    raise
                self.router.release(route, None)
                return _collect_reasoning(result)
            except Exception as exc:
                if not self.retry.should_retry(exc, attempt):
                    raise
                note_retry()
                await asyncio.sleep(self.retry.delay_s(exc, attempt))
                attempt += 1


def _routed(kwargs: dict[str, Any], api_base: str | None) -> dict[str, Any]:
    """The request's kwargs sent to the chosen endpoint (api_base is not part of DSPy's cache key)."""
    return {**kwargs, "api_base": api_base} if api_base else kwargs


def _collect_reasoning(outputs: Any) -> Any:
    """Hand a reasoning trace that arrived apart from the text (`reasoning_content`: OpenAI-protocol reasoning
    fields, or LiteLLM's ollama_chat provider, which moves Ollama's `thinking` field and inline <think> blocks
    there) to the example being evaluated, as the adapters do with inline <think> text; the engine counts it."""
    sink = thinking_traces.get()
    if sink is not None and isinstance(outputs, list):
        for out in outputs:
            trace = out.get("reasoning_content") if isinstance(out, dict) else None
            if isinstance(trace, str) and trace.strip():
                sink.append(trace.strip())
    return outputs

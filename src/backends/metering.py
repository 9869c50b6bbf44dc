"""MeteredLM, the only LM class the backends hand out: a dspy.LM that counts calls and tokens across threads,
applies the retry policy (src.backends.retry) around every request, sends each attempt through its endpoint router
(src.backends.endpoints: the endpoint's budget, and the choice among several endpoints), and keeps the run's
spending cap (SpendCap).

The spending guard: before every request to a priced model (price_in or price_out > 0), the request's worst-case
cost — its prompt at 2 characters per token (English averages about 4: the estimate is deliberately high) plus its
whole max_tokens of output, at the registry's prices — is reserved against the cap. A request whose worst case
would take what was really spent over the cap does not start: SpendCapReached is raised instead, and the cap is
marked reached so that the engine starts no further example. A request that fits beside the spend but not beside
the worst cases of the requests in flight waits for them to settle (they usually cost a small part of their worst
case): refusing it instead stopped a --concurrency 2 run against gpt-4o at $0.0014 of a $0.0305 cap, its two
reservations alone ($0.0116 each, 1,000 output tokens) leaving no room for a third. The reservation is released
when the request returns; what it really cost (the usage the provider reports, at the same prices) is added to
the spend. Responses served from the cache report no usage and cost nothing.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import dspy

from src.backends.adapters import thinking_traces
from src.backends.endpoints import Router
from src.backends.failures import Endpoint
from src.backends.retry import RetryPolicy, note_retry


# The engine's per-example count of LM requests (each attempt, cache hits included): a one-item list set by
# src.evaluation.engine for the example running in this thread. Counted here rather than by a DSPy callback: any
# callback makes DSPy bind every module's, adapter's and LM's call arguments with inspect (about a fifth of the
# engine's CPU per example, measured with py-spy on benchmarks/bench_study.py).
lm_attempts: ContextVar[list[int] | None] = ContextVar("lm_attempts", default=None)


def _count_attempt() -> None:
    sink = lm_attempts.get()
    if sink is not None:
        sink[0] += 1


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


CHARS_PER_TOKEN_LOW = 2  # a prompt's tokens are estimated high: real text averages ~4 characters per token
MESSAGE_OVERHEAD_TOKENS = 8  # role markers and separators per chat message
UNCAPPED_OUTPUT_TOKENS = 8192  # assumed output of a request that states no max_tokens


class SpendCapReached(RuntimeError):
    """A request was not started: its worst-case cost could take the run's spend over --max-cost."""


class SpendCap:
    """The run's spending cap in USD, shared by every model session of the run (and, through `ledger`, by the
    stages of one study: each stage starts from the spend the ones before it recorded).

    Thread-safe. `spent` is what requests really cost (reported usage at registry prices); `reserved` what
    requests in flight may still cost at worst."""

    def __init__(self, cap_usd: float, ledger: Path | None = None) -> None:
        self.cap_usd = float(cap_usd)
        self.ledger = ledger
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)  # a reservation released: waiting requests look again
        self.spent = self._read_ledger()
        self.reserved = 0.0
        self.reached = False  # a request was refused: nothing new should start
        self.refused: str = ""  # the first refusal, in words

    def _read_ledger(self) -> float:
        if self.ledger is None or not self.ledger.is_file():
            return 0.0
        try:
            value = float(json.loads(self.ledger.read_text(encoding="utf-8")).get("spent_usd", 0.0))
        except (OSError, ValueError, AttributeError):
            return 0.0
        return value if math.isfinite(value) and value > 0 else 0.0

    def _write_ledger(self) -> None:
        if self.ledger is None:
            return
        tmp = self.ledger.with_name(f".{self.ledger.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps({"spent_usd": self.spent, "max_cost_usd": self.cap_usd}), encoding="utf-8")
        os.replace(tmp, self.ledger)

    def reserve(self, usd: float, model: str) -> None:
        """Hold `usd` for a request about to start — after the requests in flight settled, when their worst cases
        leave no room for it — or raise SpendCapReached (and mark the cap reached)."""
        with self._lock:
            while not self._try_reserve_locked(usd, model):
                self._settled.wait()

    def try_reserve(self, usd: float, model: str) -> bool:
        """Hold `usd` and return True; False when the requests in flight leave no room yet (ask again once one
        settled); raise SpendCapReached when the spend itself leaves none."""
        with self._lock:
            return self._try_reserve_locked(usd, model)

    def _try_reserve_locked(self, usd: float, model: str) -> bool:
        if self.reached or self.spent + usd > self.cap_usd:
            self.reached = True
            why = (f"spending cap reached: --max-cost ${self.cap_usd:g}, ${self.spent:.4f} spent, "
                   f"${self.reserved:.4f} in flight; the next {model} request could cost up to ${usd:.4f}")
            self.refused = self.refused or why
            self._settled.notify_all()  # the others waiting are refused too
            raise SpendCapReached(why + " (not sent; rerun with a higher --max-cost to resume)")
        if self.spent + self.reserved + usd > self.cap_usd:
            return False
        self.reserved += usd
        return True

    def release(self, usd: float) -> None:
        with self._lock:
            self.reserved = max(0.0, self.reserved - usd)
            self._settled.notify_all()

    def add(self, usd: float) -> None:
        if usd <= 0:
            return
        with self._lock:
            self.spent += usd
            self._write_ledger()

    def facts(self) -> dict[str, Any]:
        """What a sidecar records of the cap: the cap, the run's spend so far, and whether it stopped the run."""
        with self._lock:
            return {"max_cost_usd": self.cap_usd, "run_spent_usd": round(self.spent, 6), "stopped_at_cap":
                    self.reached}

    def __deepcopy__(self, memo: dict) -> SpendCap:
        return self  # copies of an LM keep spending against the same cap


def prompt_chars(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, int]:
    """(characters, messages) of a request's prompt, from dspy.LM's call arguments (prompt, messages)."""
    prompt = kwargs.get("prompt", args[0] if args else None)
    messages = kwargs.get("messages", args[1] if len(args) > 1 else None)
    if messages is None and prompt is not None:
        messages = [{"content": prompt}]
    chars = 0
    for m in messages or []:
        content = m.get("content") if isinstance(m, dict) else m
        if isinstance(content, list):  # multi-part content: count every text part, and images as their URL text
            chars += sum(len(json.dumps(part)) for part in content)
        else:
            chars += len(str(content or ""))
    return chars, len(messages or [])


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
        self.spend: SpendCap | None = None  # the run's cap (set by the session); None: no guard
        self.prices: tuple[float, float] = (0.0, 0.0)  # USD per 1M input / output tokens (the model's registry)
        self.label = str(self.model)  # the model's key, for messages
        self.router = router  # the endpoint budgets every attempt waits for (None: unbudgeted, e.g. in tests)

    def cost_usd(self, input_tokens: float, output_tokens: float) -> float:
        return (input_tokens * self.prices[0] + output_tokens * self.prices[1]) / 1_000_000

    def worst_case_usd(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> float:
        """The most one request with these arguments can cost: its prompt estimated high, and all of max_tokens."""
        chars, n_messages = prompt_chars(args, kwargs)
        settings = {**self.kwargs, **kwargs}
        out = settings.get("max_tokens") or settings.get("max_completion_tokens") or UNCAPPED_OUTPUT_TOKENS
        n = int(settings.get("n") or 1)
        tokens_in = math.ceil(chars / CHARS_PER_TOKEN_LOW) + MESSAGE_OVERHEAD_TOKENS * max(1, n_messages)
        return self.cost_usd(tokens_in, int(out) * n)

    def _guarded(self) -> bool:
        return self.spend is not None and (self.prices[0] > 0 or self.prices[1] > 0)

    def update_history(self, entry: dict[str, Any]) -> None:
        usage = entry.get("usage") or {}
        self.meter.add(usage)
        if self._guarded() and usage:
            self.spend.add(self.cost_usd(int(usage.get("prompt_tokens") or 0),  # type: ignore[union-attr]
                                         int(usage.get("completion_tokens") or 0)))
        super().update_history(entry)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        attempt = 0
        while True:
            hold = self._reserve(args, kwargs)
            try:
                _count_attempt()
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
            finally:
                self._release(hold)

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        import asyncio

        attempt = 0
        while True:
            hold = self._reserve(args, kwargs)
            try:
                _count_attempt()
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
            finally:
                self._release(hold)

    def _reserve(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> float:
        """Reserve the request's worst case against the cap (every attempt is a new request); 0 when unguarded."""
        if not self._guarded():
            return 0.0
        usd = self.worst_case_usd(args, kwargs)
        self.spend.reserve(usd, self.label)  # type: ignore[union-attr]
        return usd

    def _release(self, usd: float) -> None:
        if usd and self.spend is not None:
            self.spend.release(usd)


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

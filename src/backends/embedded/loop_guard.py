"""The embedded models' DSPy engine: each request is streamed from the in-process llama.cpp server and stopped as
soon as the reply loops (src.backends.embedded.loops), instead of running on to the task's generation bound.

Stopping is closing the stream: llama.cpp cancels a slot's generation when its client disconnects, so the cores go
to the next request at once. The reply keeps everything generated up to the token where the loop was seen and
ends as a reply cut at its bound does (finish_reason "length"): the adapters parse it the same way, and the
engine counts it among the truncated replies. A reply that never loops is the server's own, unchanged (the same
greedy tokens, streamed rather than sent whole). Its usage is the server's report; a stopped reply's is measured
on the same server: the prompt through its chat template and tokenizer (/apply-template, /tokenize: the count
its prompt_tokens would have reported), the output as the tokens streamed (llama.cpp sends one per chunk).

Requests carry metadata {"loop_guard": VERSION}, which makes it part of DSPy's cache key (a reply cached before the
guard, or under another version of its rule, is never served as one made under it); the engine strips it before
the request reaches the server.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import httpx

from src.backends.dspy_compat import StreamAccumulator, chat_wire_payload, native_engine
from src.backends.embedded.loops import looping

VERSION = "1"  # bump when the rule in loops.py changes: cached replies made under another rule are not reused
MARKER = {"loop_guard": VERSION}


class LoopGuardEngine:
    """A DSPy custom engine (complete(Request) -> Response) for one embedded server."""

    def __init__(self, url: str, timeout_s: float | None) -> None:
        self.url, self.timeout_s = url.rstrip("/"), timeout_s
        self._lock = threading.Lock()
        self._inner: Any = None
        self._http: httpx.Client | None = None
        self.stopped = 0  # replies stopped in a loop (for tests and profiles)

    def request_kwargs(self) -> dict[str, Any]:
        """What every request carries: the marker that keeps its replies apart in DSPy's cache."""
        return {"metadata": dict(MARKER)}

    def _engine(self, request_model: str) -> Any:
        with self._lock:
            if self._inner is None:
                self._inner = native_engine(request_model, f"{self.url}/v1", "embedded", self.timeout_s)
                self._http = httpx.Client(base_url=self.url, timeout=self.timeout_s or 60.0)
            return self._inner

    def complete(self, request: Any) -> Any:
        request = _unmarked(request)
        inner = self._engine(request.model)
        acc = StreamAccumulator(request)
        text, streamed, stopped = "", 0, False
        events = inner.stream(request)
        try:
            for event in events:
                delta = getattr(event, "delta", None)
                if event.type == "delta" and delta is not None and delta.type == "text" and delta.text:
                    streamed += 1
                    text += delta.text
                    if looping(text):
                        acc.push(event)
                        stopped = True
                        break
                acc.push(event)
        finally:
            events.close()  # on a loop: the server sees the client go and frees the slot
        if not stopped:
            return acc.response()
        with self._lock:
            self.stopped += 1
        acc.finish_reason = "length"
        acc.usage = _usage(self._prompt_tokens(inner, request), streamed)
        return acc.response()

    def _prompt_tokens(self, inner: Any, request: Any) -> int:
        """The prompt's tokens as the server counts them: its chat template, then its tokenizer."""
        messages = chat_wire_payload(inner, request)["messages"]
        assert self._http is not None
        prompt = self._http.post("/apply-template", json={"messages": messages}).json()["prompt"]
        tokens = self._http.post("/tokenize", json={"content": prompt, "add_special": True,
                                                     "parse_special": True}).json()["tokens"]
        return len(tokens)

    def close(self) -> None:
        with self._lock:
            if self._inner is not None:
                self._inner.close()
            if self._http is not None:
                self._http.close()
            self._inner = self._http = None

    # DSPy copies programs and their LMs; every copy streams through the same engine (its client is thread-safe).
    def __deepcopy__(self, memo: dict) -> LoopGuardEngine:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (LoopGuardEngine, (self.url, self.timeout_s))

    def dump_state(self) -> dict[str, Any]:
        return {"url": self.url, "timeout_s": self.timeout_s}

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> LoopGuardEngine:
        return cls(state["url"], state.get("timeout_s"))


def _unmarked(request: Any) -> Any:
    """The request without the guard's cache marker (the server is never sent it)."""
    extensions = dict(request.config.extensions or {})
    if extensions.get("metadata") == MARKER:
        extensions.pop("metadata")
    return dataclasses.replace(request, config=dataclasses.replace(request.config, extensions=extensions))


def _usage(prompt_tokens: int, output_tokens: int) -> Any:
    from dspy.lm15 import Usage

    return Usage(input_tokens=prompt_tokens, output_tokens=output_tokens, total_tokens=prompt_tokens + output_tokens)

"""An Ollama-protocol front over the stand-in: /api/tags, /api/show, /api/chat (options.num_ctx, num_predict,
format, think, streaming), /api/generate, /api/version — answering as Ollama does, reasoning tags included.

What is faithful, because the product depends on it: tags carry `:latest` when untagged and a digest per tag;
unknown tags are 404 "not found, try pulling it first"; `format` may be "json" or a JSON schema; `num_predict` bounds
all generated tokens, thinking included; `eval_count` counts thinking and answer tokens; a reasoning tag answers
with its trace in `message.thinking` when the request says `think: true`, inline as `<think>…</think>` before the
answer when it says nothing (as Ollama's qwen3 and deepseek-r1 do), and without one on `think: false`; a non-reasoning
tag refuses `think: true` with 400. A prompt longer than the request's context window (options.num_ctx, else
Ollama's default) is what Ollama silently truncates: the front answers and records it in `overflows`, so a
rehearsal can say whether the product sent a large enough num_ctx.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from src.rehearsal.http import Front, HTTPFailure
from src.rehearsal.upstream import THINK_BUDGET, Completion, Upstream, text_of

OLLAMA_VERSION = "0.12.6"  # the version this front answers as (the protocol as documented for it)
OLLAMA_DEFAULT_NUM_CTX = 4096  # Ollama's window when a request sets no options.num_ctx


def full_tag(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


@dataclass(frozen=True)
class ServedTag:
    """One tag the front serves: what `ollama list` and `ollama show` say about it."""

    tag: str
    thinking: bool = False
    context_length: int = 8192
    parameter_size: str = "135M"
    family: str = "stand-in"
    quantization: str = "Q4_1"
    stand_in_sha256: str = ""

    @property
    def digest(self) -> str:
        return hashlib.sha256(f"rehearsal:{self.tag}:{self.stand_in_sha256}".encode()).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class OllamaFront(Front):
    """The front: `url` is what OLLAMA_BASE_URL / models.json api_base point at."""

    def __init__(self, upstream: Upstream, tags: list[ServedTag], think_budget: int = THINK_BUDGET):
        self.upstream = upstream
        self.tags = {full_tag(t.tag): replace(t, tag=full_tag(t.tag)) for t in tags}  # Ollama lists name:tag
        self.think_budget = think_budget
        self.overflows: list[dict[str, Any]] = []  # prompts longer than the request's context window
        self._serve(self._handle, "ollama")


    # --- routes --------------------------------------------------------------------------------------------------
    def _handle(self, method: str, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
        if path in ("/", "") and method == "GET":
            return {"status": "Ollama is running"}
        if path == "/api/version":
            return {"version": OLLAMA_VERSION}
        if path == "/api/tags":
            return {"models": [self._listing(t) for t in self.tags.values()]}
        if path == "/api/ps":
            return {"models": []}
        if path == "/api/show" and method == "POST":
            return self._show(self._tag(body))
        if path == "/api/chat" and method == "POST":
            return self._chat(body)
        if path == "/api/generate" and method == "POST":
            return self._generate(body)
        raise HTTPFailure(404, {"error": "404 page not found"})

    def _tag(self, body: dict[str, Any]) -> ServedTag:
        name = body.get("model") or body.get("name")
        if not isinstance(name, str) or not name:
            raise HTTPFailure(400, {"error": "model is required"})
        served = self.tags.get(full_tag(name))
        if served is None:
            raise HTTPFailure(404, {"error": f"model '{name}' not found, try pulling it first"})
        return served

    def _details(self, t: ServedTag) -> dict[str, Any]:
        return {"parent_model": "", "format": "gguf", "family": t.family, "families": [t.family],
                "parameter_size": t.parameter_size, "quantization_level": t.quantization}

    def _listing(self, t: ServedTag) -> dict[str, Any]:
        return {"name": t.tag, "model": t.tag, "modified_at": _now(), "size": 0, "digest": t.digest,
                "details": self._details(t)}

    def _show(self, t: ServedTag) -> dict[str, Any]:
        return {"modelfile": f"# rehearsal stand-in for {t.tag}\nFROM stand-in\n", "parameters": "",
                "template": "{{ .Prompt }}", "details": self._details(t),
                "model_info": {"general.architecture": t.family, f"{t.family}.context_length": t.context_length},
                "capabilities": ["completion", *(["thinking"] if t.thinking else [])], "modified_at": _now()}

    # --- generation ----------------------------------------------------------------------------------------------
    def _chat(self, body: dict[str, Any]) -> Any:
        t = self._tag(body)
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise HTTPFailure(400, {"error": "messages must be a list"})
        if body.get("tools"):
            raise HTTPFailure(400, {"error": f"registry.ollama.ai/library/{t.tag} does not support tools"})
        thinking, answer, counts = self._respond(t, body, messages)
        message: dict[str, Any] = {"role": "assistant", "content": answer}
        if thinking is not None and body.get("think") is True:
            message["thinking"] = thinking
        elif thinking is not None:
            message["content"] = f"<think>\n{thinking}\n</think>\n\n{answer}"
        return self._reply(t, body, counts, message=message)

    def _generate(self, body: dict[str, Any]) -> Any:
        t = self._tag(body)
        messages = ([{"role": "system", "content": body["system"]}] if body.get("system") else []) + \
            [{"role": "user", "content": str(body.get("prompt") or "")}]
        thinking, answer, counts = self._respond(t, body, messages)
        extra: dict[str, Any] = {"response": answer}
        if thinking is not None and body.get("think") is True:
            extra["thinking"] = thinking
        elif thinking is not None:
            extra["response"] = f"<think>\n{thinking}\n</think>\n\n{answer}"
        return self._reply(t, body, counts, **extra)

    def _respond(self, t: ServedTag, body: dict[str, Any],
                 messages: list[dict[str, Any]]) -> tuple[str | None, str, dict[str, Any]]:
        think = body.get("think")
        if think is True and not t.thinking:
            raise HTTPFailure(400, {"error": f"\"{t.tag}\" does not support thinking"})
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise HTTPFailure(400, {"error": "options must be an object"})
        limit = options.get("num_predict")
        limit = int(limit) if isinstance(limit, (int, float)) and limit > 0 else None
        temperature, seed = options.get("temperature"), options.get("seed")
        msgs = [{"role": m.get("role", "user"), "content": text_of(m.get("content"))} for m in messages]
        start = time.monotonic()
        trace: Completion | None = None
        if t.thinking and think is not False:
            budget = self.think_budget if limit is None else max(1, min(self.think_budget, limit // 4))
            trace = self.upstream.think(msgs, budget, temperature=temperature, seed=seed)
        left = None if limit is None else max(1, limit - (trace.completion_tokens if trace else 0))
        fmt = body.get("format")
        out = self.upstream.chat(msgs, max_tokens=left, temperature=temperature, top_p=options.get("top_p"),
                                 seed=seed, stop=options.get("stop"),
                                 schema=fmt if isinstance(fmt, dict) else None, json_mode=fmt == "json")
        window = int(options.get("num_ctx") or OLLAMA_DEFAULT_NUM_CTX)
        if out.prompt_tokens > window:
            self.overflows.append({"tag": t.tag, "prompt_tokens": out.prompt_tokens, "num_ctx": window})
        counts = {"prompt_eval_count": out.prompt_tokens,
                  "eval_count": out.completion_tokens + (trace.completion_tokens if trace else 0),
                  "truncated": out.truncated, "ns": int((time.monotonic() - start) * 1e9),
                  "think_ns": int(trace.seconds * 1e9) if trace else 0}
        return (trace.text if trace else None), out.text, counts

    def _reply(self, t: ServedTag, body: dict[str, Any], counts: dict[str, Any], **payload: Any) -> Any:
        final = {"model": t.tag, "created_at": _now(), "done": True,
                 "done_reason": "length" if counts["truncated"] else "stop",
                 "total_duration": counts["ns"], "load_duration": 0,
                 "prompt_eval_count": counts["prompt_eval_count"], "prompt_eval_duration": 0,
                 "eval_count": counts["eval_count"], "eval_duration": counts["ns"]}
        if body.get("stream", True) is False:
            return {**final, **payload}
        return self._stream(t, final, payload)

    def _stream(self, t: ServedTag, final: dict[str, Any], payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Ollama streams NDJSON: content chunks with done=false, then one done=true chunk with the counts."""
        if "message" in payload:
            message = payload["message"]
            if message.get("thinking"):
                yield {"model": t.tag, "created_at": _now(), "done": False,
                       "message": {"role": "assistant", "content": "", "thinking": message["thinking"]}}
            yield {"model": t.tag, "created_at": _now(), "done": False,
                   "message": {"role": "assistant", "content": message["content"]}}
            yield {**final, "message": {"role": "assistant", "content": ""}}
        else:
            if payload.get("thinking"):
                yield {"model": t.tag, "created_at": _now(), "done": False, "response": "",
                       "thinking": payload["thinking"]}
            yield {"model": t.tag, "created_at": _now(), "done": False, "response": payload["response"]}
            yield {**final, "response": ""}

"""The stand-in behind every front: the embedded llama.cpp server's OpenAI chat endpoint, plus reasoning traces.

A reasoning model (qwen3, deepseek-r1 under Ollama; Claude with extended thinking) writes a trace before its answer.
The stand-in has no such mode, so a trace is a real generation of its own: the same conversation, asked to reason
about the request without answering, under a small budget. Its tokens are real tokens of the stand-in, counted by
the fronts exactly as Ollama and Anthropic count thinking (inside the output tokens), so the product's trace
accounting is exercised on real text, not on a fixed string.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

THINK_INSTRUCTION = ("Before anyone answers, reason about the request above step by step in a few short sentences. "
                     "Write only the reasoning; do not give the final answer.")
THINK_BUDGET = 96  # tokens of trace per reply: enough to be visible in every count, small enough for 2 CPU cores
# A stand-in's answers are capped here whatever the request allows: the study gives reasoning models 4,096 tokens
# and gpt-5.2 16,000, which a 135M model that loops would spend in full on 2 cores. The request's own limit is still
# what the front checks and records; a capped answer is reported as truncated (done_reason "length"), as it would be.
STAND_IN_CAP = 512


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    truncated: bool  # stopped by the token limit, not by the model
    seconds: float


def text_of(content: Any) -> str:
    """A message's content as text: a string, or the text parts of a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type", "text") == "text")
    return "" if content is None else str(content)


class Upstream:
    """One OpenAI-protocol chat endpoint (the embedded server's /v1), called synchronously from the fronts' threads."""

    def __init__(self, base_url: str, timeout_s: float = 900.0, cap: int = STAND_IN_CAP):
        self.base_url = base_url.rstrip("/")
        self.cap = cap
        self._client = httpx.Client(timeout=timeout_s)

    def chat(self, messages: list[dict[str, Any]], *, max_tokens: int | None = None,
             temperature: float | None = None, top_p: float | None = None, seed: int | None = None,
             stop: list[str] | None = None, schema: dict[str, Any] | None = None,
             json_mode: bool = False) -> Completion:
        body: dict[str, Any] = {"model": "stand-in", "messages": [
            {"role": m.get("role", "user"), "content": text_of(m.get("content"))} for m in messages]}
        for key, value in (("max_tokens", min(max_tokens or self.cap, self.cap)), ("temperature", temperature), ("top_p", top_p),
                           ("seed", seed), ("stop", stop or None)):
            if value is not None:
                body[key] = value
        if schema is not None:
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}
        elif json_mode:
            body["response_format"] = {"type": "json_object"}
        start = time.monotonic()
        reply = self._client.post(f"{self.base_url}/chat/completions", json=body)
        reply.raise_for_status()
        data = reply.json()
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        return Completion(text=choice["message"].get("content") or "",
                          prompt_tokens=int(usage.get("prompt_tokens", 0)),
                          completion_tokens=int(usage.get("completion_tokens", 0)),
                          truncated=choice.get("finish_reason") == "length",
                          seconds=time.monotonic() - start)

    def think(self, messages: list[dict[str, Any]], budget: int = THINK_BUDGET, *,
              temperature: float | None = None, seed: int | None = None) -> Completion:
        """A reasoning trace about the conversation's last request (see the module's note)."""
        asked = [*messages, {"role": "user", "content": THINK_INSTRUCTION}]
        out = self.chat(asked, max_tokens=max(1, budget), temperature=temperature, seed=seed)
        return Completion(out.text.strip() or "...", out.prompt_tokens, max(1, out.completion_tokens),
                          out.truncated, out.seconds)

    def close(self) -> None:
        self._client.close()

    def forward(self, body: dict[str, Any]) -> dict[str, Any]:
        """An OpenAI chat-completions request passed through as sent, with the stand-in's cap on its token limit
        (`max_completion_tokens`, what LiteLLM sends for reasoning models such as gpt-5, becomes llama.cpp's
        `max_tokens`); the reply is the server's own."""
        out = dict(body)
        asked = out.pop("max_completion_tokens", None) or out.get("max_tokens")
        out["max_tokens"] = min(int(asked), self.cap) if isinstance(asked, (int, float)) and asked > 0 else self.cap
        reply = self._client.post(f"{self.base_url}/chat/completions", json=out)
        if reply.status_code >= 400:
            raise UpstreamError(reply.status_code, reply.json() if reply.headers.get("content-type", "").startswith(
                "application/json") else {"error": {"message": reply.text}})
        return reply.json()


class UpstreamError(Exception):
    """The server refused a forwarded request: its status and body are answered as they are."""

    def __init__(self, status: int, body: dict[str, Any]):
        super().__init__(f"{status}: {body}")
        self.status, self.body = status, body

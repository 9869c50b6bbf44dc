"""An Anthropic Messages-protocol front over the stand-in: POST /v1/messages as the Claude API answers it.

Faithful where the product depends on it: a key (x-api-key or a bearer token) and the anthropic-version header are
required (401 / 400 otherwise, in Anthropic's error shape); `max_tokens` is required; `system` may be a string or
text blocks; content may be a string or blocks (text, tool_use, tool_result); a forced tool (`tool_choice` of type
tool or any), the way LiteLLM asks Claude for JSON, is answered with a `tool_use` block whose input follows the
tool's input_schema (grammar-constrained upstream); `output_format` json_schema likewise constrains the text;
`thinking: {type: enabled, budget_tokens}` puts a `thinking` block (a real trace of the stand-in) before the answer;
usage counts input and output tokens (thinking included, as Anthropic bills it); stop_reason is end_turn, max_tokens
or tool_use. Streaming is refused with 400 (the product never streams).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from src.rehearsal.http import Front, HTTPFailure
from src.rehearsal.upstream import THINK_BUDGET, Upstream, text_of


def _error(status: int, kind: str, message: str) -> HTTPFailure:
    return HTTPFailure(status, {"type": "error", "error": {"type": kind, "message": message}})


def _block_text(block: Any) -> str:
    """Content blocks as the stand-in reads them: text as is, tool calls and results as JSON text."""
    if not isinstance(block, dict):
        return str(block)
    kind = block.get("type")
    if kind == "text":
        return block.get("text", "")
    if kind == "tool_use":
        return json.dumps(block.get("input", {}))
    if kind == "tool_result":
        inner = block.get("content")
        return text_of(inner) if isinstance(inner, list) else str(inner or "")
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(t for t in (_block_text(b) for b in content) if t)
    return text_of(content)


class AnthropicFront(Front):
    """The front: `url` is what ANTHROPIC_BASE_URL / models.json api_base point at."""

    def __init__(self, upstream: Upstream, models: list[str]):
        self.upstream = upstream
        self.models = set(models)
        self._serve(self._handle, "anthropic")


    def _handle(self, method: str, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
        if path.rstrip("/") == "/v1/models" and method == "GET":
            return {"data": [{"type": "model", "id": m, "display_name": m} for m in sorted(self.models)],
                    "has_more": False}
        if path.rstrip("/") != "/v1/messages" or method != "POST":
            raise _error(404, "not_found_error", f"Not found: {method} {path}")
        if not (headers.get("x-api-key") or headers.get("authorization", "").lower().startswith("bearer ")):
            raise _error(401, "authentication_error", "x-api-key header is required")
        if not headers.get("anthropic-version"):
            raise _error(400, "invalid_request_error", "anthropic-version: header is required")
        return self._messages(body)

    def _messages(self, body: dict[str, Any]) -> dict[str, Any]:
        model = body.get("model")
        if model not in self.models:
            raise _error(404, "not_found_error", f"model: {model}")
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise _error(400, "invalid_request_error", "max_tokens: Field required")
        if body.get("stream"):
            raise _error(400, "invalid_request_error", "stream: not supported by the rehearsal front")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _error(400, "invalid_request_error", "messages: at least one message is required")
        system = body.get("system")
        msgs = ([{"role": "system", "content": _content_text(system)}] if system else []) + \
            [{"role": m.get("role", "user"), "content": _content_text(m.get("content"))} for m in messages]
        temperature = body.get("temperature")

        blocks: list[dict[str, Any]] = []
        thought = 0
        thinking = body.get("thinking") or {}
        if isinstance(thinking, dict) and thinking.get("type") == "enabled":
            budget = int(thinking.get("budget_tokens") or THINK_BUDGET)
            trace = self.upstream.think(msgs, min(budget, THINK_BUDGET, max(1, max_tokens // 4)))
            thought = trace.completion_tokens
            blocks.append({"type": "thinking", "thinking": trace.text,
                           "signature": hashlib.sha256(trace.text.encode()).hexdigest()})

        tool = self._forced_tool(body)
        fmt = body.get("output_format") or {}
        schema = tool["input_schema"] if tool else (fmt.get("schema") if fmt.get("type") == "json_schema" else None)
        out = self.upstream.chat(msgs, max_tokens=max(1, max_tokens - thought), temperature=temperature,
                                 top_p=body.get("top_p"), stop=body.get("stop_sequences"), schema=schema)
        stop_reason = "max_tokens" if out.truncated else "end_turn"
        if tool is not None:
            try:
                args = json.loads(out.text)
            except ValueError:
                args = {}
            blocks.append({"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": tool["name"],
                           "input": args if isinstance(args, dict) else {"value": args}})
            stop_reason = "max_tokens" if out.truncated else "tool_use"
        else:
            blocks.append({"type": "text", "text": out.text})
        return {"id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "model": model,
                "content": blocks, "stop_reason": stop_reason, "stop_sequence": None,
                "usage": {"input_tokens": out.prompt_tokens, "output_tokens": out.completion_tokens + thought,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}

    @staticmethod
    def _forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("name")]
        choice = body.get("tool_choice") or {}
        if not tools or not isinstance(choice, dict):
            return None
        if choice.get("type") == "tool":
            named = [t for t in tools if t["name"] == choice.get("name")]
            if not named:
                raise _error(400, "invalid_request_error", f"tool_choice: tool {choice.get('name')} not found")
            return {**named[0], "input_schema": named[0].get("input_schema") or {"type": "object"}}
        if choice.get("type") == "any":
            return {**tools[0], "input_schema": tools[0].get("input_schema") or {"type": "object"}}
        return None

"""The OpenAI protocol for the rehearsal: the embedded llama.cpp server's own /v1/chat/completions, passed through.

The server speaks the protocol itself; this pass-through only adds what a rehearsal needs from it: a bearer key is
required (401 as OpenAI answers without one), the model named must be one the rehearsal serves (404 otherwise),
every request is recorded for the summary, and the stand-in's cap on generated tokens applies (gpt-5.2 asks for
16,000 `max_completion_tokens`; see upstream.STAND_IN_CAP). Bodies and replies are otherwise the server's own.
"""

from __future__ import annotations

from typing import Any

from src.rehearsal.http import Front, HTTPFailure
from src.rehearsal.upstream import Upstream, UpstreamError


def _error(status: int, kind: str, message: str, code: str | None = None) -> HTTPFailure:
    return HTTPFailure(status, {"error": {"message": message, "type": kind, "param": None, "code": code}})


class OpenAIFront(Front):
    """The front: `url` (ending in /v1) is what OPENAI_BASE_URL points at."""

    def __init__(self, upstream: Upstream, models: list[str]):
        self.upstream = upstream
        self.models = set(models)
        self._serve(self._handle, "openai", "/v1")


    def _handle(self, method: str, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
        path = path.rstrip("/")
        if not headers.get("authorization", "").lower().startswith("bearer "):
            raise _error(401, "invalid_request_error", "You didn't provide an API key.")
        if path == "/v1/models" and method == "GET":
            return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "rehearsal"}
                                               for m in sorted(self.models)]}
        if path != "/v1/chat/completions" or method != "POST":
            raise _error(404, "invalid_request_error", f"Unknown request URL: {method} {path}")
        if body.get("model") not in self.models:
            raise _error(404, "invalid_request_error", f"The model `{body.get('model')}` does not exist or you do "
                         f"not have access to it.", "model_not_found")
        if body.get("stream"):
            raise _error(400, "invalid_request_error", "stream: not supported by the rehearsal front")
        try:
            reply = self.upstream.forward(body)
        except UpstreamError as exc:
            raise HTTPFailure(exc.status, exc.body) from None
        reply["model"] = body["model"]  # as OpenAI answers: the model asked for, not the server's file name
        return reply

"""Loopback servers for tests: a scripted OpenAI-protocol endpoint whose every reply (or failure) the test decides.

    with ScriptedOpenAI(lambda req, i: reply_text('{"answer": "yes"}')) as server:
        server.url            # http://127.0.0.1:PORT/v1, for api_base / OPENAI_BASE_URL
        server.requests       # every request body received, in order
        server.headers        # and its headers (lower-case names), e.g. server.headers[i]["authorization"]
        server.release()      # every trickling reply sends the rest of its body at once

A behaviour gets (request JSON, request index) and returns a Reply: `reply_text(content)` answers with a chat
completion, `fail(status, body)` with an HTTP error, `HANG` never answers, `Reply(raw=..., status=...)` sends bytes
as they are (malformed JSON), and `Reply(content=..., chunk_delay_s=...)` trickles the body slowly.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    content: str | None = None  # assistant message content of a chat completion
    status: int = 200
    raw: bytes | None = None  # send exactly these bytes as the body
    hang: bool = False  # accept the request and never answer
    chunk_delay_s: float = 0.0  # send the body one byte at a time with this delay
    prompt_tokens: int = 10
    completion_tokens: int = 5


HANG = Reply(hang=True)


def reply_text(content: str, **kw: Any) -> Reply:
    return Reply(content=content, **kw)


def fail(status: int, message: str = "injected failure") -> Reply:
    return Reply(status=status, raw=json.dumps({"error": {"message": message, "type": "server_error"}}).encode())


Behaviour = Callable[[dict[str, Any], int], Reply]


def chat_fields(req: dict[str, Any]) -> list[str]:
    """The output fields a DSPy chat-adapter request asks for, in order (`[[ ## answer ## ]]` markers in its last
    user message), without the closing `completed` marker."""
    messages = req.get("messages") or []
    text = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "") or ""
    if isinstance(text, list):
        text = " ".join(part.get("text", "") for part in text if isinstance(part, dict))
    names = re.findall(r"\[\[ ## (\w+) ## \]\]", text.split("Respond with")[-1])
    return [n for n in dict.fromkeys(names) if n != "completed"]


def chat_reply(req: dict[str, Any], value: str = "yes") -> Reply:
    """A well-formed chat-adapter reply giving every requested output field `value`."""
    fields = chat_fields(req) or ["answer"]
    body = "".join(f"[[ ## {name} ## ]]\n{value}\n\n" for name in fields) + "[[ ## completed ## ]]"
    return Reply(content=body)


class ScriptedOpenAI:
    """A threaded HTTP server on 127.0.0.1 speaking the OpenAI chat-completions protocol as scripted."""

    def __init__(self, behaviour: Behaviour, model: str = "scripted"):
        self.behaviour = behaviour
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # /v1/models, for clients that list
                body = json.dumps({"object": "list", "data": [{"id": outer.model, "object": "model"}]}).encode()
                self._send(200, body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    req = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    req = {}
                with outer._lock:
                    index = len(outer.requests)
                    outer.requests.append(req)
                    outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                reply = outer.behaviour(req, index)
                if reply.hang:
                    time.sleep(3600)
                    return
                body = reply.raw if reply.raw is not None else json.dumps({
                    "id": f"cmpl-{index}", "object": "chat.completion", "created": 0, "model": outer.model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": reply.content or ""}}],
                    "usage": {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                              "total_tokens": reply.prompt_tokens + reply.completion_tokens}}).encode()
                self._send(reply.status, body, reply.chunk_delay_s)

            def _send(self, status: int, body: bytes, delay: float = 0.0) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if delay:
                        for i in range(len(body)):
                            if outer._released.is_set():
                                self.wfile.write(body[i:])
                                break
                            self.wfile.write(body[i:i + 1])
                            self.wfile.flush()
                            time.sleep(delay)
                    else:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def release(self) -> None:
        """Let every trickling reply send the rest of its body at once."""
        self._released.set()

    def __enter__(self) -> ScriptedOpenAI:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

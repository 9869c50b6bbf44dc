"""A reasoning trace is found and counted (Record.thinking_tokens) however it arrives: inline <think> text, the
`reasoning_content` field of an OpenAI-protocol reply, or Ollama's `thinking` field / inline <think> under
LiteLLM's ollama_chat provider (which moves both into reasoning_content)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from loopback import Reply, ScriptedOpenAI, chat_fields

from src.backends.endpoints import REGISTRY
from src.backends.session import Sessions, SessionOptions
from src.evaluation.engine import EngineSettings, evaluate
from src.registry import ModelSpec, load_config
from src.tasks import get_task
from src.tasks.sources import resolve_source
from src.tasks.splits import load_task_data

TRACE = "Let me think. The passage says the answer is yes, " * 4  # 200 characters: ~50 estimated tokens


def _answer(fields: list[str]) -> str:
    return "".join(f"[[ ## {f} ## ]]\nyes\n\n" for f in fields or ["answer"]) + "[[ ## completed ## ]]"


def _records(workdir, spec: ModelSpec):
    REGISTRY.reset()
    config = load_config(workdir).with_model(spec)
    task = get_task("analysis", config)
    data = load_task_data(task, resolve_source("builtin", config, announce=False))
    session = Sessions(config, SessionOptions(cache=False, adapter="chat")).session(spec.key)
    return evaluate(task.program(), data.eval[:2], task, spec, session.lm, session.adapter,
                    EngineSettings(concurrency=1, progress=False), "t", "baseline", lambda r: None)


class _Ollama(BaseHTTPRequestHandler):
    """Ollama's /api/chat answering like a reasoning model: the trace in `thinking`, or inline in the content."""

    inline = False

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        if self.path != "/api/chat":
            return self._send({"model_info": {}, "details": {}, "template": ""})
        text = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        answer = _answer(chat_fields({"messages": [{"role": "user", "content": text}]}))
        message = {"role": "assistant", "content": f"<think>{TRACE}</think>{answer}" if self.inline else answer}
        if not self.inline:
            message["thinking"] = TRACE
        self._send({"model": body.get("model"), "created_at": "2026-01-01T00:00:00Z", "done": True,
                    "done_reason": "stop", "prompt_eval_count": 30, "eval_count": 80, "message": message})

    def _send(self, obj):
        data = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("inline", [False, True], ids=["thinking-field", "inline-think"])
def test_ollama_reasoning_trace_is_counted(workdir, inline):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Ollama,), {"inline": inline}))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        spec = ModelSpec("r1", "ollama", "qwen3:4b", "local", api_base=f"http://127.0.0.1:{srv.server_port}",
                         supports_thinking=True, json_fallback=False)
        recs = _records(workdir, spec)
    finally:
        srv.shutdown()
    assert [r.error for r in recs] == ["", ""] and not any(r.parse_failure for r in recs)
    assert all(r.thinking_tokens == round(len(TRACE.strip()) / 4) for r in recs), [r.thinking_tokens for r in recs]


def test_openai_protocol_reasoning_content_is_counted(workdir):
    def behave(req, i):
        answer = _answer(chat_fields(req))
        body = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": answer, "reasoning_content": TRACE}}],
                "usage": {"prompt_tokens": 30, "completion_tokens": 80, "total_tokens": 110}}
        return Reply(raw=json.dumps(body).encode())

    with ScriptedOpenAI(behave) as server:
        spec = ModelSpec("oa", "openai_compatible", "m", "local", api_base=server.url, json_fallback=False)
        recs = _records(workdir, spec)
    assert all(r.thinking_tokens == round(len(TRACE.strip()) / 4) for r in recs), [r.thinking_tokens for r in recs]
    assert all(r.output_tokens == 80 for r in recs)  # the trace is part of the output the model was paid for

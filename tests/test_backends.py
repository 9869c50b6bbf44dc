"""Backends against real servers: the embedded llama.cpp server (also as the OpenAI path) and Ollama's wire format."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

import dspy
import pytest

from src.backends.adapters import StructuredAdapter
from src.backends import LMSettings, backend_for
from src.backends.session import Sessions
from src.backends.embedded import WEIGHTS, Weights, verify_weights
from src.registry import ModelSpec, load_config
from src.errors import PreflightError, UserError


def make_lm(key: str, config, settings: LMSettings):
    return backend_for(config.model(key), config).make_lm(settings)


def preflight(keys: list[str], config, adapter: str | None = None) -> None:
    Sessions(config).preflight(keys, adapter)


def test_embedded_chat_completion_returns_text_and_usage(embedded_config):
    lm = make_lm("smollm2-135m", embedded_config, LMSettings(cache=False, max_tokens=24))
    out = lm("Name one colour.")
    assert isinstance(out[0], str) and out[0].strip()
    usage = lm.history[-1]["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0


def test_embedded_server_is_reused_across_lms(embedded_config):
    b = backend_for(embedded_config.model("smollm2-135m"), embedded_config)
    assert b.server(2) is b.server(4)  # one server per model per process


def test_structured_adapter_enforces_the_schema(embedded_config):
    class Pick(dspy.Signature):
        """Which animal makes this sound?"""

        sound: str = dspy.InputField()
        animal: Literal["cat", "dog", "cow"] = dspy.OutputField()

    lm = make_lm("smollm2-135m", embedded_config, LMSettings(cache=False))
    with dspy.context(lm=lm, adapter=StructuredAdapter()):
        pred = dspy.Predict(Pick)(sound="a deep moo from the field")
    assert pred.animal in ("cat", "dog", "cow")  # the grammar makes any other value impossible
    assert "response_format" in lm.history[-1]["kwargs"]


def test_openai_path_runs_against_the_embedded_server(embedded_config, monkeypatch):
    server = backend_for(embedded_config.model("smollm2-135m"), embedded_config).server(2)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key-123456")
    monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
    preflight(["gpt-4o-mini"], embedded_config)  # key present -> no problem
    lm = make_lm("gpt-4o-mini", embedded_config, LMSettings(cache=False, max_tokens=16))
    assert lm.model == "openai/gpt-4o-mini"
    with dspy.context(lm=lm, adapter=StructuredAdapter()):
        pred = dspy.Predict("question -> answer")(question="What is 2 + 2?")
    assert isinstance(pred.answer, str)
    assert lm.history[-1]["usage"]["completion_tokens"] > 0


class _OllamaStandIn(BaseHTTPRequestHandler):
    """Answers /api/chat like Ollama and keeps every request body; Ollama itself cannot run here."""

    bodies: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append((self.path, body))
        reply = {"model": body.get("model"), "created_at": "2026-01-01T00:00:00Z", "done": True,
                 "done_reason": "stop", "prompt_eval_count": 11, "eval_count": 3,
                 "message": {"role": "assistant", "content": "[[ ## answer ## ]]\nyes\n\n[[ ## completed ## ]]"}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_ollama_request_carries_num_ctx(embedded_config):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _OllamaStandIn)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        spec = ModelSpec("standin", "ollama", "qwen2.5:7b", "local", api_base=f"http://127.0.0.1:{srv.server_port}",
                         num_ctx=12288)
        config = embedded_config.with_model(spec)
        lm = make_lm("standin", config, LMSettings(cache=False))
        with dspy.context(lm=lm):
            pred = dspy.Predict("question -> answer")(question="Is it?")
        assert pred.answer == "yes"
        path, body = _OllamaStandIn.bodies[-1]
        assert path == "/api/chat"
        assert body["model"] == "qwen2.5:7b"
        assert body["options"]["num_ctx"] == 12288
        assert body["options"]["temperature"] == 0
    finally:
        srv.shutdown()


def test_default_num_ctx_is_at_least_8192(embedded_config):
    assert backend_for(embedded_config.model("qwen2.5_7b"), embedded_config).num_ctx >= 8192


def test_preflight_lists_every_problem_with_its_fix(embedded_config, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(PreflightError) as err:
        preflight(["gpt-4o", "qwen2.5_7b", "smollm2-135m"], embedded_config)
    lines = err.value.problems
    assert any("OPENAI_API_KEY is not set" in p for p in lines)
    assert any("Ollama is not reachable" in p and "OLLAMA_BASE_URL" in p for p in lines)
    assert len(lines) == 2  # the installed embedded model has no problem


def test_preflight_refuses_structured_adapter_without_schema_support(embedded_config, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-000000000")
    with pytest.raises(PreflightError) as err:
        preflight(["claude-sonnet-4.5"], embedded_config, adapter="structured")
    assert "--adapter structured" in err.value.problems[0]


def test_tampered_weights_fail_the_sha256_check(tmp_path):
    real = WEIGHTS["smollm2-135m-instruct-q4_1"]
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * 1024)
    with pytest.raises(UserError, match="sha256"):
        verify_weights(fake, Weights("model.gguf", real.sha256, None, setup_hint="x"), tmp_path)


def test_preflight_asks_the_lm_client_about_each_models_settings(workdir):
    from src.backends.session import client_refusal

    assert client_refusal("openai/gpt-5.2", 1.0, 16000) is None
    assert "16000" in client_refusal("openai/gpt-5.2", 1.0, 192)
    # DSPy's client lets temperature 0 through (it checks only a non-zero one); OpenAI's API refuses it for the
    # same models, so the check does too.
    assert "temperature 0 given" in client_refusal("openai/gpt-5.2", 0.0, 16000)
    assert client_refusal("openai/gpt-4o", 0.0, 192) is None
    assert client_refusal("openai/smollm2-135m", 0.0, 192) is None
    sessions = Sessions(load_config())
    cap, note = sessions.applied_cap("gpt-5.2", 192)
    assert cap is None and "cap of 192 tokens is not applied" in note and "max_tokens 16000" in note
    assert sessions.applied_cap("gpt-4o", 192) == (192, "")
    assert sessions.refusal("gpt-5.2") is None  # the registered settings themselves are fine


def test_backoff_never_exceeds_its_cap_so_the_example_deadline_holds():
    import random

    from src.backends.retry import RetryPolicy

    random.seed(0)
    policy = RetryPolicy(attempts=6, backoff_s=1.0, max_backoff_s=5.0, timeout_s=10.0)
    waits = [policy.delay_s(TimeoutError(), a) for a in range(5) for _ in range(2000)]
    assert max(waits) <= 5.0 and min(waits) >= 0.5
    # the deadline: every attempt at its timeout plus the longest waits, per call
    assert policy.example_deadline_s(1) == 6 * 10 + 5 * 5
    assert policy.example_deadline_s(2) == 2 * (6 * 10 + 5 * 5)


def test_failures_are_phrased_with_the_key_variable_and_endpoint_never_the_key():
    import socket

    from dspy.utils.exceptions import LMAuthError, LMServerError, LMTransportError

    from src.backends.failures import Endpoint, cause_of, error_text, explain

    ep = Endpoint("https://api.example/v1", "OPENAI_API_KEY", 120.0)
    assert explain(LMAuthError("bad key sk-xyz", status=401), ep) == "the server rejected OPENAI_API_KEY (401)"
    assert explain(LMServerError("boom", status=503), ep) == "server error (503) from https://api.example/v1"
    refused = LMTransportError("failed to connect")
    refused.__cause__ = ConnectionRefusedError(111, "Connection refused")
    assert explain(refused, ep) == "cannot reach https://api.example/v1 (connection refused)"
    dns = LMTransportError("failed to connect")
    dns.__cause__ = socket.gaierror(-2, "Name or service not known")
    assert explain(dns, ep) == "cannot reach https://api.example/v1 (host name not resolved)"
    slow = LMTransportError("read timed out")
    slow.__cause__ = TimeoutError("timed out")
    assert explain(slow, ep).startswith("no reply from https://api.example/v1 within 120 s")
    no_key = Endpoint("http://gpu-box:8000/v1")
    assert "set api_key_env" in explain(LMAuthError("no", status=401), no_key)
    text = error_text(LMAuthError("bad", status=401), ep)
    assert cause_of(text) == "the server rejected OPENAI_API_KEY (401)" and "LMAuthError" in text
    assert cause_of("ValueError: an error column written by an older version") == \
        "ValueError: an error column written by an older version"

"""The one retry policy, against a loopback OpenAI-protocol server that fails on purpose: transient failures are
retried a bounded number of times (by us only, never again by DSPy or LiteLLM), counted in the example's record,
and a server that never answers ends the example within the request timeout."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from src.backends.retry import RetryPolicy, is_transient, timeout_for
from src.backends.session import Sessions, SessionOptions
from src.evaluation.engine import EngineSettings, evaluate_example
from src.registry import load_config
from src.tasks import get_task
from src.tasks.example import TaskExample


class _Faulty(BaseHTTPRequestHandler):
    """OpenAI chat completions: `plan` is a list of behaviours, one per request ('500', 'hang', 'ok')."""

    plan: list[str] = []
    hits: list[float] = []
    lock = threading.Lock()

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        with self.lock:
            i = len(self.hits)
            self.hits.append(time.monotonic())
            what = self.plan[i] if i < len(self.plan) else self.plan[-1]
        if what == "hang":
            time.sleep(30)
            return
        if what == "500":
            body = b'{"error": {"message": "boom", "type": "server_error"}}'
            self.send_response(500)
        else:
            body = json.dumps({
                "id": "x", "object": "chat.completion", "created": 0, "model": "faulty",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": '{"answer": "yes"}'}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}}).encode()
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def faulty(tmp_path, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Faulty)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    (tmp_path / "models.json").write_text(json.dumps({"models": [
        {"key": "faulty", "provider": "openai_compatible", "model_id": "faulty", "kind": "local",
         "api_base": f"http://127.0.0.1:{server.server_address[1]}/v1", "request_timeout_s": 1.0}]}))
    monkeypatch.chdir(tmp_path)
    _Faulty.hits = []
    yield server
    server.shutdown()


def _evaluate(plan: list[str]):
    _Faulty.plan = plan
    config = load_config()
    session = Sessions(config, SessionOptions(adapter="json", cache=False)).session("faulty")
    session.lm.retry = RetryPolicy(attempts=3, backoff_s=0.05, timeout_s=session.lm.retry.timeout_s)
    task = get_task("analysis", config)
    example = TaskExample("ex1", {"passage": "The sky is blue.", "question": "is the sky blue"}, {"answer": "yes"},
                          True, "yes")
    return evaluate_example(task.program(), example, task, session.spec, session.lm, session.adapter,
                            EngineSettings(progress=False), "test", "baseline")


def test_a_transient_failure_is_retried_once_and_counted(faulty):
    rec = _evaluate(["500", "ok"])
    assert rec.error == "" and rec.is_correct == 1
    assert rec.retries == 1 and rec.lm_calls == 1
    assert len(_Faulty.hits) == 2  # one failed request, one that answered: nobody else retried


def test_a_persistent_failure_stops_after_the_policy_attempts(faulty):
    rec = _evaluate(["500"])
    assert rec.error and rec.score == 0 and rec.retries == 2
    assert len(_Faulty.hits) == 3  # 3 attempts in all: DSPy's and LiteLLM's own retries are off


def test_a_server_that_never_answers_ends_within_the_timeout_bound(faulty):
    t0 = time.monotonic()
    rec = _evaluate(["hang"])
    elapsed = time.monotonic() - t0
    assert rec.error and rec.retries == 2
    # 3 attempts x 1 s timeout + two short backoffs, with slack for the machine; today's default would be 600 s
    assert elapsed < 10, elapsed


def test_timeouts_come_from_the_provider_unless_the_model_sets_one():
    assert timeout_for("openai", None, False) == 120 and timeout_for("ollama", None, False) == 600
    assert timeout_for("ollama", None, True) > timeout_for("ollama", None, False)  # reasoning models think first
    assert timeout_for("openai", 7.5, True) == 7.5


def test_only_transient_errors_are_retried():
    import httpx

    assert is_transient(httpx.ReadTimeout("slow")) and is_transient(ConnectionResetError())
    assert not is_transient(ValueError("bad request")) and not is_transient(KeyError("x"))
    policy = RetryPolicy(attempts=2)
    assert policy.should_retry(TimeoutError(), 0) and not policy.should_retry(TimeoutError(), 1)

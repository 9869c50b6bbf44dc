"""The one retry policy, against a loopback OpenAI-protocol server that fails on purpose: transient failures are
retried a bounded number of times (by us only, never again by DSPy or LiteLLM), counted in the example's record,
and a server that never answers ends the example within the request timeout."""

from __future__ import annotations

import json
import time

import pytest

from loopback import HANG, Reply, ScriptedOpenAI, fail, reply_text

from src.backends.retry import RetryPolicy, is_transient, timeout_for
from src.backends.session import Sessions, SessionOptions
from src.evaluation.engine import EngineSettings, evaluate_example
from src.registry import load_config
from src.tasks import get_task
from src.tasks.example import TaskExample


@pytest.fixture
def faulty(tmp_path, monkeypatch):
    """A loopback endpoint that follows `plan` (one behaviour per request, the last repeating)."""
    plan: list[Reply] = []
    server = ScriptedOpenAI(lambda req, i: plan[min(i, len(plan) - 1)])
    with server:
        (tmp_path / "models.json").write_text(json.dumps({"models": [
            {"key": "faulty", "provider": "openai_compatible", "model_id": "faulty", "kind": "local",
             "api_base": server.url, "request_timeout_s": 1.0}]}))
        monkeypatch.chdir(tmp_path)
        server.plan = plan
        yield server


OK = reply_text('{"answer": "yes"}')


def _evaluate(server: ScriptedOpenAI, plan: list[Reply]):
    server.plan[:] = plan
    config = load_config()
    session = Sessions(config, SessionOptions(adapter="json", cache=False)).session("faulty")
    session.lm.retry = RetryPolicy(attempts=3, backoff_s=0.05, timeout_s=session.lm.retry.timeout_s)
    task = get_task("analysis", config)
    example = TaskExample("ex1", {"passage": "The sky is blue.", "question": "is the sky blue"}, {"answer": "yes"},
                          True, "yes")
    return evaluate_example(task.program(), example, task, session.spec, session.lm, session.adapter,
                            EngineSettings(progress=False), "test", "baseline")


def test_a_transient_failure_is_retried_once_and_counted(faulty):
    rec = _evaluate(faulty, [fail(500), OK])
    assert rec.error == "" and rec.is_correct == 1
    assert rec.retries == 1 and rec.lm_calls == 1
    assert len(faulty.requests) == 2  # one failed request, one that answered: nobody else retried


def test_a_persistent_failure_stops_after_the_policy_attempts(faulty):
    rec = _evaluate(faulty, [fail(500)])
    assert rec.error and rec.score == 0 and rec.retries == 2
    assert len(faulty.requests) == 3  # 3 attempts in all: DSPy's and LiteLLM's own retries are off


def test_a_server_that_never_answers_ends_within_the_timeout_bound(faulty):
    t0 = time.monotonic()
    rec = _evaluate(faulty, [HANG])
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

"""Pins every private DSPy API this product uses (src/backends/dspy_compat.py) against the installed DSPy: an
upgrade that moves or changes one fails here, by name, instead of somewhere downstream."""

from __future__ import annotations

import importlib.metadata
from typing import Literal

import dspy
import pytest

from src.backends import dspy_compat


class Pick(dspy.Signature):
    """Pick an animal."""

    sound: str = dspy.InputField()
    animal: Literal["cat", "dog"] = dspy.OutputField()


def test_the_pinned_dspy_version():
    assert importlib.metadata.version("dspy") == "3.4.1"  # bump together with a review of dspy_compat.py


def test_structured_response_format_is_a_json_schema_of_the_outputs():
    fmt = dspy_compat.structured_response_format(Pick, False)
    schema = fmt if isinstance(fmt, dict) else fmt.model_json_schema()
    text = str(schema)
    assert "animal" in text and "cat" in text and "sound" not in text.split("animal")[0][-20:]
    assert dspy_compat.has_open_ended_mapping(Pick) is False
    assert dspy_compat.has_open_ended_mapping(dspy.Signature("q -> answer: dict[str, int]")) is True


def test_mipro_projection_counts_calls_from_mipro_s_own_estimate():
    program = dspy.Predict(Pick)
    light = dspy_compat.mipro_projected_calls(program, lambda *a, **k: 1.0, {"auto": "light"}, {}, n_train=100)
    explicit = dspy_compat.mipro_projected_calls(
        program, lambda *a, **k: 1.0, {"auto": None, "num_candidates": 3, "max_bootstrapped_demos": 1,
                                       "max_labeled_demos": 1},
        {"num_trials": 2, "minibatch": False, "program_aware_proposer": False}, n_train=8)
    for prompt, task, bootstrap in (light, explicit):
        assert prompt > 0 and task > 0 and bootstrap >= 0
    assert light[1] > explicit[1]  # a bigger budget projects more task-model calls


def test_gepa_feedback_type_is_importable():
    score = dspy_compat.ScoreWithFeedback(score=0.5, feedback="close")
    assert score.score == 0.5 and score.feedback == "close"


_FIRST_REQUESTS = r'''
import json, sys, threading
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from loopback import ScriptedOpenAI, chat_reply
from src.backends.session import Sessions, SessionOptions
from src.registry import load_config

with ScriptedOpenAI(lambda req, i: chat_reply(req)) as server:
    Path("models.json").write_text(json.dumps({"models": [{
        "key": "loop", "provider": "openai_compatible", "model_id": "loop", "kind": "api", "api_base": server.url,
        "api_key_env": "LOOP_KEY", "max_tokens": 50}]}))
    if sys.argv[2] == "gateway":  # DSPy sends through LiteLLM while an OPENAI_BASE_URL gateway is set
        import os
        os.environ["OPENAI_BASE_URL"] = server.url
    lm = Sessions(load_config(), SessionOptions(cache=False, concurrency=8)).session("loop").lm
    print("loaded" if "litellm" in sys.modules and type(sys.modules["litellm"]).__name__ == "module" else "lazy")
    errors, start = [], threading.Barrier(8)
    def first(i):
        start.wait()
        try:
            lm(messages=[{"role": "user", "content": f"question {i}"}])
        except Exception as exc:
            errors.append(repr(exc))
    threads = [threading.Thread(target=first, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    print(json.dumps(errors))
'''


@pytest.mark.parametrize("route, loaded", [("gateway", "loaded"), ("native", "lazy")])
def test_a_session_loads_litellm_before_its_first_requests_race_on_it(tmp_path, route, loaded):
    """DSPy imports LiteLLM lazily on the first request it sends through LiteLLM; eight first requests at once raced
    on that import and one failed ("partially initialized module 'litellm'"). A fresh process: a session DSPy will
    send through LiteLLM has it loaded when opened; a native one (DSPy's own OpenAI-protocol client) never imports it
    (~7 s of CPU); either way eight simultaneous first requests all succeed."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).parent
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "OPENAI_API_BASE")}
    proc = subprocess.run([sys.executable, "-c", _FIRST_REQUESTS, str(tests), route], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={**env, "LOOP_KEY": "sk-loop", "PYTHONPATH": str(tests.parent)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    state, errors = proc.stdout.strip().splitlines()[-2:]
    assert state == loaded
    assert errors == "[]"


def test_memoized_model_metadata_agrees_with_dspy_s_own_lookup():
    """Generated cases: known models of DSPy's map (under their provider and others), unknown names (every local
    model), declared namespaces; the memoized lookup equals DSPy's own, the second time too, and a caller mutating
    its copy does not change what the next caller gets."""
    import random

    from dspy.clients import capabilities, costs
    from dspy.clients import model_metadata

    dspy_compat.memoize_model_metadata()
    assert costs.model_info is dspy_compat._memoized_model_info
    assert capabilities.model_info is dspy_compat._memoized_model_info
    original = dspy_compat._ORIGINAL_MODEL_INFO
    assert original is model_metadata.model_info  # DSPy's own, left in place
    data = model_metadata._load()
    rng = random.Random(3)
    names = [k for k, v in data.items() if isinstance(v, dict) and "/" not in k]
    providers = ["openai", "anthropic", "ollama", "openai-chat", "vllm", "azure-chat", "nobody"]
    cases = [(rng.choice(providers), rng.choice(names), None) for _ in range(1500)]
    cases += [(rng.choice(providers), f"local-model-{rng.randrange(50)}", None) for _ in range(400)]
    cases += [(rng.choice(providers), rng.choice(names), rng.choice([(), ("openai",), ("anthropic", "openai")]))
              for _ in range(300)]
    for provider, model, namespaces in cases:
        want = original(provider, model, namespaces=namespaces)
        first = dspy_compat._memoized_model_info(provider, model, namespaces=namespaces)
        first["poisoned"] = True
        assert dspy_compat._memoized_model_info(provider, model, namespaces=namespaces) == want


def test_the_native_engine_streams_to_the_given_server_and_shows_its_wire_messages():
    """native_engine resolves an `openai/<model>` with an api_base as dspy.LM does (the chat provider at that base
    URL, never api.openai.com), and chat_wire_payload shows the messages it would send; StreamAccumulator folds."""
    from dspy.clients.execution import _canonical, prepare

    engine = dspy_compat.native_engine("openai/some-model", "http://127.0.0.1:9/v1", "embedded", 5.0)
    lm = dspy.LM("openai/some-model", api_base="http://127.0.0.1:9/v1", api_key="embedded", temperature=0.0,
                 max_tokens=7)
    request = _canonical(prepare(lm, None, [{"role": "user", "content": "hi"}], {}, direct=True))
    payload = dspy_compat.chat_wire_payload(engine, request)
    assert payload["messages"] == [{"role": "user", "content": "hi"}] and payload["stream"] is True
    assert payload["model"] == "some-model" and 7 in (payload.get("max_tokens"), payload.get("max_completion_tokens"))
    provider, _ = engine._target(request, streaming=True)
    assert "127.0.0.1:9" in provider.build_request(request, True).url
    acc = dspy_compat.StreamAccumulator(request)
    assert acc.response().finish_reason == "stop"  # an empty stream folds to an empty reply

"""Endpoints: per-endpoint budgets shared by every LM and unit, many endpoints per model (least in flight, circuit
breaker), per-endpoint preflight, and the models.json / study-file fields - against real loopback servers."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dspy
import pytest
from loopback import ScriptedOpenAI, chat_reply, fail

from src.backends import backend_for
from src.backends.endpoints import BREAKER_FAILURES, REGISTRY
from src.backends.session import Sessions, SessionOptions
from src.errors import ConfigError
from src.registry import ModelSpec, load_config
from src.registry.user_files import load_models_file


class _Concurrency:
    """A loopback behaviour that answers after `delay_s` and records the most requests it held at once."""

    def __init__(self, delay_s: float = 0.15):
        self.delay_s, self.live, self.peak, self.lock = delay_s, 0, 0, threading.Lock()

    def __call__(self, req, i):
        with self.lock:
            self.live += 1
            self.peak = max(self.peak, self.live)
        time.sleep(self.delay_s)
        with self.lock:
            self.live -= 1
        return chat_reply(req, "yes")


def _config(workdir, *specs: ModelSpec):
    config = load_config(workdir)
    for s in specs:
        config = config.with_model(s)
    return config


def _ask(lm, n: int, threads: int) -> list:
    def one(i):
        with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
            return dspy.Predict("question -> answer")(question=f"q{i}").answer
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(n)))


def test_one_budget_per_endpoint_across_sessions(workdir):
    REGISTRY.reset()
    behaviour = _Concurrency()
    with ScriptedOpenAI(behaviour) as server:
        spec = ModelSpec("ep", "openai_compatible", "m", "local", api_base=server.url, endpoint_concurrency=3,
                         json_fallback=False)
        sessions = Sessions(_config(workdir, spec), SessionOptions(cache=False))
        a, b = sessions.unit_session("ep"), sessions.unit_session("ep")  # two units of one model, side by side
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda lm: _ask(lm, 6, 6), [a.lm, b.lm]))
        assert answers == [["yes"] * 6] * 2
        assert behaviour.peak == 3  # the budget, reached and never exceeded, whatever each unit's concurrency
        assert a.lm.router.served_snapshot() == {server.url: 6} and b.lm.router.served_snapshot() == {server.url: 6}
        assert REGISTRY.snapshot()[f"{server.url}#m"]["calls"] == 12


def test_requests_spread_over_replicas_and_a_failing_one_is_taken_out(workdir):
    REGISTRY.reset()
    beh = [_Concurrency(0.1), _Concurrency(0.1)]
    with ScriptedOpenAI(beh[0]) as s1, ScriptedOpenAI(beh[1]) as s2, \
            ScriptedOpenAI(lambda req, i: fail(503, "overloaded")) as bad:
        spec = ModelSpec("rep", "openai_compatible", "m", "local", api_base=(s1.url, s2.url, bad.url),
                         endpoint_concurrency=2, json_fallback=False)
        sessions = Sessions(_config(workdir, spec), SessionOptions(cache=False))
        lm = sessions.session("rep").lm
        lm.retry = type(lm.retry)(attempts=4, backoff_s=0.01, max_backoff_s=0.05, timeout_s=30)
        answers = _ask(lm, 24, 6)
        assert answers == ["yes"] * 24  # every failed attempt on the bad replica was retried on a good one
        # then it was out of the rotation: at most the requests already in flight there (budget 2) still arrived
        assert BREAKER_FAILURES <= len(bad.requests) <= BREAKER_FAILURES + 1
        assert len(s1.requests) >= 8 and len(s2.requests) >= 8  # spread, not piled on one
        assert beh[0].peak <= 2 and beh[1].peak <= 2
        served = lm.router.served_snapshot()
        assert served[s1.url] == len(s1.requests) and served[bad.url] == len(bad.requests)


def test_models_json_api_base_list_and_endpoint_concurrency(tmp_path):
    path = tmp_path / "models.json"

    def load(entry):
        path.write_text(json.dumps({"models": [{"key": "x", "provider": "ollama", "model_id": "qwen2.5:7b",
                                                "kind": "local", **entry}]}))
        return load_models_file(path, {})

    spec = load({"api_base": ["http://a:11434", "http://b:11434/"], "endpoint_concurrency": 4})["x"]
    assert spec.api_bases == ("http://a:11434", "http://b:11434") and spec.endpoint_concurrency == 4
    assert spec.public_dict()["api_base"] == ["http://a:11434", "http://b:11434"]
    assert load({"api_base": ["http://a:11434"]})["x"].api_base == "http://a:11434"
    for bad, words in (({"api_base": []}, "api_base"), ({"api_base": ["http://a", "http://a"]}, "same URL twice"),
                       ({"api_base": ["http://a", 3]}, "api_base"), ({"endpoint_concurrency": 0}, ">= 1")):
        with pytest.raises(ConfigError) as exc:
            load(bad)
        assert words in str(exc.value) and "\n" not in str(exc.value)


def test_preflight_names_the_unreachable_replica(workdir):
    with ScriptedOpenAI(lambda req, i: chat_reply(req)) as live:
        dead = "http://127.0.0.1:9/v1"
        spec = ModelSpec("two", "openai_compatible", "m", "local", api_base=(live.url, dead))
        problems = backend_for(spec, _config(workdir, spec)).problems()
        assert len(problems) == 1 and dead in problems[0] and "not reachable" in problems[0]
        assert live.url not in problems[0]


class _Tags(BaseHTTPRequestHandler):
    digest = "sha256:aaa"
    models: list = ["qwen2.5:7b"]

    def do_GET(self):
        body = json.dumps({"models": [{"name": m, "model": m, "digest": self.digest, "size": 1,
                                       "modified_at": "2026-01-01T00:00:00Z", "details": {}}
                                      for m in self.models]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _ollama_host(digest: str, models: list[str]):
    handler = type("H", (_Tags,), {"digest": digest, "models": models})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_port}"


def test_ollama_preflight_checks_each_host_tag_and_digest(workdir):
    hosts = [_ollama_host("sha256:aaa", ["qwen2.5:7b"]), _ollama_host("sha256:aaa", ["qwen2.5:7b"]),
             _ollama_host("sha256:bbb", ["qwen2.5:7b"]), _ollama_host("sha256:aaa", ["llama3.2:latest"])]
    try:
        urls = [u for _, u in hosts]

        def problems(*chosen):
            spec = ModelSpec("q", "ollama", "qwen2.5:7b", "local", api_base=tuple(chosen))
            return backend_for(spec, _config(workdir, spec)).problems()

        assert problems(urls[0], urls[1]) == []
        mismatch = problems(urls[0], urls[2])
        assert len(mismatch) == 1 and "different builds" in mismatch[0] and urls[2] in mismatch[0]
        missing = problems(urls[0], urls[3])
        assert len(missing) == 1 and f"not pulled on {urls[3]}" in missing[0]
        down = problems(urls[0], "http://127.0.0.1:9")
        assert len(down) == 1 and "not reachable at http://127.0.0.1:9" in down[0]
    finally:
        for srv, _ in hosts:
            srv.shutdown()


def test_study_file_endpoint_concurrency(tmp_path):
    from src.commands.experiment import load_experiment
    from src.commands.study_run import with_endpoint_overrides

    config = load_config(tmp_path)
    good = tmp_path / "good.yaml"
    good.write_text("name: g\nstudents: [llama3.2]\nendpoint_concurrency: {llama3.2: 6}\n")
    exp = load_experiment(good, config)
    assert with_endpoint_overrides(config, exp).model("llama3.2").endpoint_concurrency == 6
    for body, words in (("endpoint_concurrency: {nope: 2}", "unknown model 'nope'"),
                        ("endpoint_concurrency: {llama3.2: 0}", "whole numbers >= 1")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(f"name: b\nstudents: [llama3.2]\n{body}\n")
        with pytest.raises(ConfigError) as exc:
            load_experiment(bad, config)
        assert words in str(exc.value)

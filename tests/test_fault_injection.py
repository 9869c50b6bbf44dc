"""Backends that misbehave on purpose (tests/loopback.py): every wait is bounded, transient failures are retried and
counted, a unit in which every example failed fails the run with one line naming the cause (never the key), a key
echoed back by a server is written nowhere, and a reasoning model under the quick preset runs coherently.

The runners are real (python -m src.<runner> in a subprocess, as users run them); only the model server is scripted.
"""

from __future__ import annotations

import csv
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from conftest import run_cli
from loopback import HANG, Reply, ScriptedOpenAI, chat_fields, chat_reply, fail, reply_text

from src.backends.retry import RetryPolicy
from src.backends.session import Sessions, SessionOptions
from src.evaluation.unit import EvalUnit, run_unit
from src.registry import load_config
from src.results.naming import journal_path, meta_path
from src.tasks import get_task
from src.tasks.sources import resolve_source
from src.tasks.splits import load_task_data

YES = reply_text('{"answer": "yes"}')
SECRET = "sk-proj-ECHOED-back-0123456789abcdefXYZ"


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _everything(folder: Path) -> str:
    return "".join(p.read_text(errors="ignore") for p in folder.rglob("*") if p.is_file())


def _models_json(folder: Path, *entries: dict) -> None:
    (folder / "models.json").write_text(json.dumps({"models": list(entries)}))


def _compatible(key: str, url: str, **extra) -> dict:
    return {"key": key, "provider": "openai_compatible", "model_id": key, "kind": "local", "api_base": url, **extra}


def _baseline(model: str, results: Path, *more: str) -> list[str]:
    return ["src.run_baseline_v2", "--models", model, "--tasks", "analysis", "--data", "builtin", "--adapter", "json",
            "--results-dir", str(results), "--no-cache", *more]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- hang, trickle: every wait is bounded ------------------------------------------------------------------------

def test_a_hanging_backend_ends_the_unit_within_its_bound_and_the_unit_resumes(tmp_path):
    plan = [HANG]
    with ScriptedOpenAI(lambda req, i: plan[0]) as server:
        _models_json(tmp_path, _compatible("hangs", server.url, request_timeout_s=1.0))
        results = tmp_path / "results"
        t0 = time.monotonic()
        r = run_cli(_baseline("hangs", results, "--limit", "4", "--concurrency", "4"), cwd=tmp_path, timeout=300)
        elapsed = time.monotonic() - t0
        assert r.returncode == 1, r.stderr[-2000:]
        # 3 attempts x 1 s request timeout + 2 backoffs (at most 1.5 s, 3 s) per example, 4 examples at once, plus the
        # interpreter's start (slow on a loaded machine); without the timeout this run would wait forever.
        assert elapsed < 90, elapsed
        assert f"error: model hangs: no reply from {server.url} within 1 s" in r.stderr, r.stderr[-2000:]
        assert "Traceback" not in r.stderr
        rows = _rows(results / "local_baseline_analysis_hangs.csv")
        assert len(rows) == 4 and all(x["error"] and x["retries"] == "2" and x["score"] == "0.0" for x in rows)
        assert json.loads(meta_path(results / "local_baseline_analysis_hangs.csv").read_text())["status"] == "failed"

        plan[0] = YES  # the server recovers: the same command finishes the unit
        again = run_cli(_baseline("hangs", results, "--limit", "4"), cwd=tmp_path)
        assert again.returncode == 0, again.stderr[-2000:]
        rows = _rows(results / "local_baseline_analysis_hangs.csv")
        assert len(rows) == 4 and not any(x["error"] for x in rows) and {x["prediction"] for x in rows} == {"yes"}


@pytest.fixture
def loopback_session(tmp_path, monkeypatch):
    """A session on a loopback model (in-process), the analysis task's built-in data, and a results folder."""
    server_plan: dict = {"reply": YES}
    with ScriptedOpenAI(lambda req, i: server_plan["reply"](i) if callable(server_plan["reply"])
                        else server_plan["reply"]) as server:
        _models_json(tmp_path, _compatible("scripted", server.url, request_timeout_s=1.0))
        monkeypatch.chdir(tmp_path)
        config = load_config()
        session = Sessions(config, SessionOptions(adapter="json", cache=False, concurrency=3)).session("scripted")
        task = get_task("analysis", config)
        data = load_task_data(task, resolve_source("builtin", config))
        yield server, server_plan, session, task, data, tmp_path / "results"


def _unit(task, data, results: Path, n: int) -> EvalUnit:
    return EvalUnit("baseline", task, data, data.eval_subset(n), task.program(),
                    results / "local_baseline_analysis_scripted.csv", {"kind": "baseline"})


def test_a_trickling_backend_is_cut_at_the_example_deadline_and_never_writes_late(loopback_session):
    server, plan, session, task, data, results = loopback_session
    # One byte every 100 ms: the next byte always comes within the 0.5 s request timeout, so only the engine's
    # wall-clock bound can stop a reply that takes ~25 s in all.
    plan["reply"] = Reply(content='{"answer": "yes"}', chunk_delay_s=0.1)
    session.lm.retry = RetryPolicy(attempts=2, backoff_s=0.05, max_backoff_s=0.1, timeout_s=0.5)
    deadline = session.lm.retry.example_deadline_s(1)  # 2 x 0.5 + 0.1 = 1.1 s for the one call an example makes
    unit = _unit(task, data, results, 3)
    t0 = time.monotonic()
    with pytest.raises(Exception) as failed:
        run_unit(unit, session, results_dir=results, force=False, run_ctx={}, progress=False)
    elapsed = time.monotonic() - t0
    assert f"model scripted: timed out after {deadline:g} s without a complete reply from {server.url}" \
        in str(failed.value)
    # The three examples run at once; nothing waits for the ~25 s trickles (slack for a loaded machine).
    assert elapsed < deadline + 10, elapsed
    journal = journal_path(unit.csv_path)
    written = journal.read_bytes()
    assert written.count(b'"type": "record"') == 3
    # The abandoned workers are still reading their trickles; when those end, nothing more reaches the journal.
    workers = [t for t in threading.enumerate() if t.name.startswith("ia-eval-")]
    assert workers and all(t.daemon for t in workers)  # they could never keep the process from exiting either
    server.release()
    for t in workers:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in workers)
    assert journal.read_bytes() == written
    rows = _rows(unit.csv_path)
    assert [x["example_id"] for x in rows] == [ex.id for ex in unit.examples]
    assert all(x["error"].startswith(f"timed out after {deadline:g} s") for x in rows)


def test_http_500_on_every_third_request_is_retried_and_counted(loopback_session):
    server, plan, session, task, data, results = loopback_session
    plan["reply"] = lambda i: fail(500) if i % 3 == 2 else YES
    session.lm.retry = RetryPolicy(attempts=3, backoff_s=0.01, max_backoff_s=0.05, timeout_s=5)
    session.concurrency = 1  # requests in example order, so which examples meet a 500 is known
    unit = _unit(task, data, results, 6)
    summary = run_unit(unit, session, results_dir=results, force=False, run_ctx={}, progress=False)
    assert summary.errors == 0 and summary.n == 6
    rows = _rows(unit.csv_path)
    failures = sum(1 for i in range(len(server.requests)) if i % 3 == 2)
    assert len(server.requests) == 6 + failures  # each 500 cost exactly one more request: nobody else retried
    assert sum(int(x["retries"]) for x in rows) == failures
    assert [int(x["retries"]) for x in rows] == [0, 0, 1, 0, 1, 0]  # requests 2 and 5 failed, then succeeded


# ---- a unit in which every example failed fails the run, with its cause ------------------------------------------

@pytest.mark.parametrize("fault, expected", [
    ("rejected", "the server rejected GATEWAY_CREDENTIAL (401)"),
    ("unreachable", "cannot reach {url} (connection refused)"),
    ("malformed", "unreadable reply from {url}"),
    ("server_error", "server error (503) from {url}"),
])
def test_a_unit_where_every_example_failed_fails_the_run_with_its_cause(tmp_path, fault, expected):
    behaviours = {"rejected": fail(401, f"Incorrect API key provided: {SECRET}"),
                  "malformed": Reply(raw=b'{"choices": [ {"message": '), "server_error": fail(503)}
    with ScriptedOpenAI(lambda req, i: behaviours.get(fault, YES)) as server:
        url = f"http://127.0.0.1:{_closed_port()}/v1" if fault == "unreachable" else server.url
        _models_json(tmp_path, _compatible("gateway", url, api_key_env="GATEWAY_CREDENTIAL"))
        ledger = tmp_path / "ledger.jsonl"
        env = {"GATEWAY_CREDENTIAL": SECRET, "IA_UNIT_LEDGER": str(ledger)}
        r = run_cli(_baseline("gateway", tmp_path / "results", "--limit", "2"), cwd=tmp_path, env=env)
    cause = f"model gateway: {expected.format(url=url)}"
    assert r.returncode == 1, r.stderr[-2000:]
    assert f"error: {cause} - 1 of 1 unit(s)" in r.stderr.splitlines(), r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    entry = json.loads(ledger.read_text().splitlines()[0])
    assert entry["status"] == "failed" and entry["message"].startswith(cause)
    assert SECRET not in r.stdout + r.stderr + _everything(tmp_path)


def test_run_experiment_surfaces_the_cause_of_a_failed_unit(tmp_path):
    with ScriptedOpenAI(lambda req, i: fail(401, "Incorrect API key provided")) as server:
        study = tmp_path / "study.yaml"
        study.write_text("name: keys\nreferences: [gpt-4o-mini]\ntasks: analysis\nlimit: 2\ndata: builtin\n")
        env = {"OPENAI_API_KEY": SECRET, "OPENAI_BASE_URL": server.url}
        r = run_cli(["src.experiment", "--config", str(study), "--phases", "baseline", "--results-dir",
                     str(tmp_path / "results"), "--no-cache"], cwd=tmp_path, env=env)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    assert ("FAILED baseline (references): gpt-4o-mini x analysis - model gpt-4o-mini: the server rejected "
            "OPENAI_API_KEY (401)") in r.stdout, r.stdout[-3000:]
    assert SECRET not in r.stdout + r.stderr + _everything(tmp_path)


# ---- secrets ------------------------------------------------------------------------------------------------------

def test_a_backend_that_echoes_the_key_leaves_it_in_no_file(tmp_path):
    def echo(req: dict, i: int) -> Reply:
        key = server.headers[i].get("authorization", "")
        if i % 2:  # half the examples: an error whose text quotes the key
            return fail(400, f"bad request from {key}")
        return reply_text(json.dumps({"answer": f"yes ({key})"}))

    server = ScriptedOpenAI(echo)
    with server:
        _models_json(tmp_path, _compatible("echo", server.url, api_key_env="GATEWAY_CREDENTIAL"))
        results = tmp_path / "results"
        r = run_cli(_baseline("echo", results, "--limit", "4", "--concurrency", "1"), cwd=tmp_path,
                    env={"GATEWAY_CREDENTIAL": "gw-cred-0123456789abcdef"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert all(h.get("authorization") == "Bearer gw-cred-0123456789abcdef" for h in server.headers)
    rows = _rows(results / "local_baseline_analysis_echo.csv")
    assert any("Bearer ***" in x["prediction"] for x in rows) and any("Bearer ***" in x["error"] for x in rows)
    c = run_cli(["src.consolidate_results", "--results-dir", str(results)], cwd=tmp_path)
    assert c.returncode == 0, c.stderr[-2000:]
    written = _everything(tmp_path)
    assert "gw-cred-0123456789abcdef" not in written + r.stdout + r.stderr + c.stdout + c.stderr
    assert (results / "golden" / "SUMMARY.md").is_file()


def test_an_optimization_against_a_server_that_echoes_the_key_prints_and_writes_none_of_it(tmp_path):
    server = ScriptedOpenAI(lambda req, i: fail(401, f"Incorrect API key: {server.headers[i].get('authorization')}"))
    with server:
        r = run_cli(["src.run_optimization", "--models", "gpt-4o-mini", "--preset", "quick", "--tasks", "analysis",
                     "--data", "builtin", "--seeds", "10", "--results-dir", str(tmp_path / "results"),
                     "--no-cache"], cwd=tmp_path, env={"OPENAI_API_KEY": SECRET, "OPENAI_BASE_URL": server.url})
    assert r.returncode == 1, r.stderr[-2000:]
    assert server.requests and "FAILED" in r.stdout + r.stderr and "Traceback" not in r.stderr
    assert SECRET not in r.stdout + r.stderr + _everything(tmp_path)


def test_a_prompt_model_that_echoes_the_key_leaves_it_in_no_saved_program(tmp_path):
    def echo(req: dict, i: int) -> Reply:
        auth = server.headers[i].get("authorization", "")
        if "proposed_instruction" in chat_fields(req):  # MIPROv2 asks for instructions: one quoting the key
            return chat_reply(req, f"Answer the question. {auth}")
        # The student is right only under that instruction, so it wins on dev and is the program saved.
        return chat_reply(req, "yes" if auth in json.dumps(req) else "maybe")

    server = ScriptedOpenAI(echo)
    with server:
        results = tmp_path / "results"
        r = run_cli(["src.run_optimization", "--models", "gpt-4o-mini", "--preset", "quick", "--tasks", "analysis",
                     "--data", "builtin", "--seeds", "10", "--results-dir", str(results), "--no-cache"],
                    cwd=tmp_path, env={"OPENAI_API_KEY": SECRET, "OPENAI_BASE_URL": server.url})
    assert r.returncode == 0, r.stderr[-2000:]
    program = (results / "optimized_programs" / "gpt-4o-mini_analysis_mipro_v2.json").read_text()
    assert "Answer the question. Bearer ***" in program  # the key-quoting instruction won; it is saved without it
    assert SECRET not in r.stdout + r.stderr + _everything(tmp_path)


# ---- settings the LM client refuses --------------------------------------------------------------------------------

def test_quick_preset_with_a_reasoning_model_runs_with_the_models_own_token_budget(tmp_path):
    with ScriptedOpenAI(lambda req, i: chat_reply(req)) as server:
        env = {"OPENAI_API_KEY": SECRET, "OPENAI_BASE_URL": server.url}
        results = tmp_path / "results"
        r = run_cli(["src.run_optimization", "--models", "gpt-5.2", "--preset", "quick", "--tasks", "analysis",
                     "--data", "builtin", "--seeds", "10", "--results-dir", str(results), "--no-cache"],
                    cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "note: model gpt-5.2: the budget's generation cap of 192 tokens is not applied" in r.stderr
    assert server.requests, "the stage ran"
    for body in server.requests:  # every request is one the OpenAI API accepts for a reasoning model
        assert body.get("temperature") == 1.0, body.get("temperature")
        assert (body.get("max_completion_tokens") or body.get("max_tokens")) >= 16000, body
    side = json.loads((results / "optimized_programs" / "gpt-5.2_analysis_mipro_v2.meta.json").read_text())
    assert side["status"] == "ok" and side["lm"]["student"]["max_tokens"] == 16000
    assert "not applied" in side["lm"]["student"]["max_tokens_cap_not_applied"]
    assert SECRET not in r.stdout + r.stderr + _everything(tmp_path)


@pytest.mark.parametrize("override, refused", [
    ({"max_tokens": 4000}, "max_tokens 4000"),
    ({"fixed_temperature": 0}, "temperature 0"),
])
def test_preflight_refuses_settings_the_lm_client_would_refuse_before_any_request(tmp_path, override, refused):
    with ScriptedOpenAI(lambda req, i: chat_reply(req)) as server:
        _models_json(tmp_path, {"key": "gpt-5.2", **override})
        r = run_cli(["src.run_baseline_v2", "--models", "gpt-5.2", "--tasks", "analysis", "--data", "builtin",
                     "--limit", "2", "--results-dir", str(tmp_path / "results")], cwd=tmp_path,
                    env={"OPENAI_API_KEY": SECRET, "OPENAI_BASE_URL": server.url})
    assert r.returncode == 3, r.stderr[-2000:]
    assert "preflight failed (nothing was run)" in r.stderr and "Traceback" not in r.stderr
    line = next(x for x in r.stderr.splitlines() if "model gpt-5.2: the LM client refuses its settings" in x)
    assert refused in line and "models.json" in line
    assert server.requests == [] and not (tmp_path / "results").exists()

"""The console: library warnings and the libraries' own progress bars stay off the terminal, land in a log file in the
results folder and are counted in one closing line; -v shows them live. The runner is real (python -m
src.run_baseline_v2 in a subprocess); only the model server is scripted, to reply with truncated completions (DSPy warns
about each one)."""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path

import tqdm

from conftest import run_cli
from loopback import Reply, ScriptedOpenAI

from src.commands.console import Console


def _truncated(req: dict, index: int) -> Reply:
    body = {"id": f"c{index}", "object": "chat.completion", "created": 0, "model": "scripted",
            "choices": [{"index": 0, "finish_reason": "length",
                         "message": {"role": "assistant", "content": '{"answer": "yes"}'}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
    return Reply(raw=json.dumps(body).encode())


def _run(tmp_path: Path, *extra: str):
    with ScriptedOpenAI(_truncated) as server:
        (tmp_path / "models.json").write_text(json.dumps({"models": [
            {"key": "cut", "provider": "openai_compatible", "model_id": "cut", "kind": "local",
             "api_base": server.url}]}))
        results = tmp_path / "results"
        r = run_cli(["src.run_baseline_v2", "--models", "cut", "--tasks", "analysis", "--data", "builtin",
                     "--adapter", "json", "--limit", "3", "--results-dir", str(results), "--no-cache", *extra],
                    cwd=tmp_path, timeout=300)
    return r, results


def test_library_warnings_go_to_the_log_and_are_counted_in_one_line(tmp_path):
    r, results = _run(tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "WARNING" not in r.stderr and "truncated due to" not in r.stderr, r.stderr[-2000:]
    logs = list((results / "logs").glob("run_baseline_v2-*.log"))
    assert len(logs) == 1, logs
    text = logs[0].read_text()
    assert text.count("LM response was truncated") >= 3, text[-2000:]
    summary = [line for line in r.stderr.splitlines() if line.startswith("library messages:")]
    assert summary and "truncated replies" in summary[0] and str(logs[0]) in summary[0], r.stderr[-2000:]
    n = int(summary[0].split("library messages: ")[1].split(" truncated replies")[0])
    assert n == text.count("LM response was truncated")
    # the log folder is not a result: the results still consolidate
    c = run_cli(["src.consolidate_results", "--results-dir", str(results)], cwd=tmp_path, timeout=300)
    assert c.returncode == 0, c.stderr[-2000:]


def test_verbose_shows_them_live_and_still_logs(tmp_path):
    r, results = _run(tmp_path, "-v")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "LM response was truncated" in r.stderr
    assert any("LM response was truncated" in p.read_text() for p in (results / "logs").glob("*.log"))


def test_a_quiet_run_leaves_no_log_file(tmp_path):
    console = Console()
    console.install(verbose=False)
    try:
        console.attach(tmp_path / "other", "quiet")
        assert console.summary() is None
    finally:
        console.uninstall()
    assert not (tmp_path / "other" / "logs").exists()


def test_library_bars_are_off_ours_are_on_and_loggers_are_restored(tmp_path, monkeypatch):
    dspy_logger = logging.getLogger("dspy")
    before = (list(dspy_logger.handlers), dspy_logger.propagate, dspy_logger.level)
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    console = Console()
    console.install(verbose=False)
    try:
        for _ in tqdm.tqdm(range(3), file=err, mininterval=0):  # what DSPy's parallelizer calls
            pass
        assert err.getvalue() == ""
        for _ in tqdm.std.tqdm(range(3), file=err, mininterval=0):  # what the engine calls
            pass
        assert "3/3" in err.getvalue()
        logging.getLogger("dspy.predict.predict").warning("Input contains fields not in signature: x")
        logging.getLogger("LiteLLM").error("boom")
        console.attach(tmp_path, "unit")
        assert "not in signature" not in err.getvalue()
        assert console.summary().startswith("library messages: 1 errors, 1 inputs not in signature - see ")
    finally:
        console.uninstall()
    assert tqdm.tqdm is tqdm.std.tqdm
    assert (list(dspy_logger.handlers), dspy_logger.propagate, dspy_logger.level) == before
    assert "boom" in next((tmp_path / "logs").glob("unit-*.log")).read_text()


def test_what_an_optimizer_prints_goes_to_the_log_and_the_rest_passes(tmp_path, capsys):
    from src.backends.library_output import library_output

    console = Console()
    console.install(verbose=False)
    try:
        console.attach(tmp_path, "opt")
        print("ours: seed 10 started")
        with library_output():
            print("Bootstrapping set 1/3")  # as DSPy's MIPROv2 does
        print("ours: seed 10 done")
    finally:
        console.uninstall()
    out = capsys.readouterr().out
    assert "ours: seed 10 started" in out and "ours: seed 10 done" in out and "Bootstrapping" not in out
    assert "Bootstrapping set 1/3" in next((tmp_path / "logs").glob("opt-*.log")).read_text()
    assert sys.stdout is not None and not type(sys.stdout).__name__ == "_Routed"

"""kill -9 of a real baseline run (embedded model, built-in BoolQ) at several points, then the same command again:
the resumed result must be identical to an uninterrupted run's.

"Identical" means: the same example ids, each exactly once, in the sample's order; every column equal (prediction,
score, parse failures, errors, tokens, calls, retries, cost, extras, the experiment id) except `latency_ms` and
`timestamp`, which record when and how fast, not what; and the sidecars agree on status, identity, examples and
summary. Every run bypasses the response cache (--no-cache), so each prediction the resumed run shows was either
made by the model in that run or kept from the killed one - never replayed from a cache - and greedy decoding on one
slot makes the model's answers reproducible.

The kill lands at a chosen point, not at a random moment: a sitecustomize module (test instrumentation only, put on
PYTHONPATH for the killed run) stops the process there, says so in a marker file, and waits to be killed.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

NAME = "local_baseline_analysis_smollm2-135m.csv"
LIMIT = 4
VOLATILE = {"latency_ms", "timestamp"}

HOOK = r'''
"""Test instrumentation: stop this process at IA_TEST_KILL_AT and wait for SIGKILL (tests/test_kill_resume.py)."""
import json, os, time
from dataclasses import asdict
from pathlib import Path

_AT = os.environ.get("IA_TEST_KILL_AT", "")
_MARK = Path(os.environ.get("IA_TEST_KILL_MARK", "/nonexistent"))


def _stop():
    _MARK.write_text("stopped")
    while True:
        time.sleep(1)


if _AT:
    from src.results import files, journal

    _append, _write, _n = journal.Journal.append, files.atomic_write_text, [0]

    def append(self, record):
        _n[0] += 1
        if _AT == "before-first-record" and _n[0] == 1:
            _stop()
        if _AT == "torn-line" and _n[0] == 3:  # half a line on disk, then the kill
            line = json.dumps({"type": "record", "record": asdict(record)}, ensure_ascii=False) + "\n"
            self._fh.write(line[: len(line) // 2])
            self._fh.flush()
            _stop()
        return _append(self, record)

    def atomic_write_text(path, text):
        if _AT == "rendering" and str(path).endswith(".meta.json") and "baseline_analysis" in str(path):
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            tmp.write_text(text[: len(text) // 2])  # the CSV is written; the sidecar is half-written aside
            _stop()
        return _write(path, text)

    journal.Journal.append = append
    files.atomic_write_text = atomic_write_text
'''


def _command(results: Path) -> list[str]:
    return [sys.executable, "-m", "src.run_baseline_v2", "--models", "smollm2-135m", "--tasks", "analysis",
            "--limit", str(LIMIT), "--data", "builtin", "--results-dir", str(results), "--concurrency", "1",
            "--no-cache"]


def _env(extra: dict[str, str] | None = None, hook_dir: Path | None = None) -> dict[str, str]:
    path = str(ROOT) if hook_dir is None else f"{hook_dir}{os.pathsep}{ROOT}"
    return {**os.environ, "PYTHONPATH": path, **(extra or {})}


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _records(journal: Path) -> int:
    """Whole record lines in a journal (a torn last line is not one)."""
    count = 0
    for line in journal.read_bytes().split(b"\n"):
        try:
            count += json.loads(line).get("type") == "record"
        except ValueError:
            pass
    return count


def _sidecar(path: Path) -> dict:
    meta = json.loads(path.with_suffix(".meta.json").read_text())
    return {k: meta[k] for k in ("status", "experiment_id", "unit", "examples", "adapter", "data")} | \
        {"summary": meta["summary"]}


@pytest.fixture(scope="module")
def uninterrupted(embedded_config, tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("uninterrupted")
    r = subprocess.run(_command(results), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    return results / NAME


@pytest.mark.slow
@pytest.mark.parametrize("point, records_at_kill", [
    ("before-first-record", 0),  # the header written, no example finished
    ("torn-line", 2),  # mid-unit, while the third record's line was half-written
    ("rendering", LIMIT),  # every record written, the CSV rendered, the sidecar half-written beside it
])
def test_kill_9_then_resume_gives_the_uninterrupted_result(uninterrupted, tmp_path, point, records_at_kill):
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(HOOK)
    results, mark = tmp_path / "results", tmp_path / "stopped"
    env = _env({"IA_TEST_KILL_AT": point, "IA_TEST_KILL_MARK": str(mark)}, hook_dir)
    proc = subprocess.Popen(_command(results), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600
        while not mark.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert mark.exists(), f"the run never reached {point} (exit {proc.poll()})"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    journal = results / ".journal" / (Path(NAME).stem + ".jsonl")
    assert _records(journal) == records_at_kill
    if point != "rendering":
        assert not (results / NAME).exists()

    r = subprocess.run(_command(results), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    want, got = _rows(uninterrupted), _rows(results / NAME)
    assert [x["example_id"] for x in got] == [x["example_id"] for x in want]  # each example once, in order
    for w, g in zip(want, got):
        assert {k: v for k, v in g.items() if k not in VOLATILE} == {k: v for k, v in w.items() if k not in VOLATILE}
    assert _sidecar(results / NAME) == _sidecar(uninterrupted)
    # Nothing was asked twice: one journal line per example, and no temporary file is left behind.
    assert _records(journal) == LIMIT and journal.read_text().count('"type": "record"') == LIMIT
    assert not list(results.glob(".*.tmp-*"))

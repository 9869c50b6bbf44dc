"""The baseline runner end to end on the embedded model: CSV + sidecar, no secrets, errors. (kill -9 and resume:
tests/test_kill_resume.py.)"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

from conftest import run_cli

from src.tasks import get_task
from src.tasks.sources import resolve_source
from src.tasks.splits import load_task_data

SECRET = "sk-test-THIS-MUST-NOT-LEAK-0123456789"


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _journal_records(results: Path, stem: str) -> list[dict]:
    lines = (results / ".journal" / f"{stem}.jsonl").read_text().splitlines()
    return [json.loads(x)["record"] for x in lines if '"type": "record"' in x]


def test_baseline_writes_csv_and_sidecar_without_secrets(embedded_config, tmp_path):
    env = {"OPENAI_API_KEY": SECRET, "ANTHROPIC_API_KEY": SECRET + "-ant"}
    r = run_cli(["src.run_baseline_v2", "--mode", "embedded", "--models", "smollm2-135m", "--tasks", "math,analysis",
                 "--limit", "3", "--data", "builtin", "--results-dir", str(tmp_path)], env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for task in ("math", "analysis"):
        csv_path = tmp_path / f"local_baseline_{task}_smollm2-135m.csv"
        rows = _rows(csv_path)
        # rows in the eval sample's order: the first 3 of the seeded permutation of the split
        sample = load_task_data(get_task(task, embedded_config), resolve_source("builtin", embedded_config)).eval_subset(3)
        assert [x["example_id"] for x in rows] == [ex.id for ex in sample]
        assert all(int(x["input_tokens"]) > 0 for x in rows)
        meta = json.loads(csv_path.with_suffix(".meta.json").read_text())
        assert meta["status"] == "complete" and meta["smoke_data"] is True
        assert meta["adapter"] == "structured" and meta["run"]["versions"]["dspy"]
        assert meta["model"]["digest"].startswith("sha256:")
    everything = "".join(p.read_text(errors="ignore") for p in tmp_path.rglob("*") if p.is_file())
    assert SECRET not in everything
    assert "smollm2-135m" in r.stdout  # the closing score table
    assert (tmp_path / "experiments" / "baseline_v2" / "raw_scores.json").is_file()

    # Same command again: everything is reused, nothing re-run.
    t0 = time.time()
    again = run_cli(["src.run_baseline_v2", "--models", "smollm2-135m", "--tasks", "math,analysis", "--limit", "3",
                     "--data", "builtin", "--results-dir", str(tmp_path)], cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.count("reused") == 2, again.stdout + again.stderr
    assert len(_journal_records(tmp_path, "local_baseline_math_smollm2-135m")) == 3
    assert time.time() - t0 < 60


def test_changed_settings_are_refused_then_force_archives(embedded_config, tmp_path):
    base = ["src.run_baseline_v2", "--models", "smollm2-135m", "--tasks", "analysis", "--limit", "2",
            "--data", "builtin", "--results-dir", str(tmp_path)]
    assert run_cli(base).returncode == 0
    original = (tmp_path / "local_baseline_analysis_smollm2-135m.csv").read_bytes()
    r = run_cli(base + ["--adapter", "json"])
    assert r.returncode != 0
    assert "adapter='structured' (now 'json')" in r.stdout + r.stderr and "--force" in r.stdout + r.stderr
    assert (tmp_path / "local_baseline_analysis_smollm2-135m.csv").read_bytes() == original
    r = run_cli(base + ["--adapter", "json", "--force"])
    assert r.returncode == 0, r.stderr
    archived = list((tmp_path / ".archive").rglob("local_baseline_analysis_smollm2-135m.csv"))
    assert len(archived) == 1 and archived[0].read_bytes() == original


def test_bad_input_gives_one_line_errors(tmp_path):
    cases = [
        (["src.run_baseline_v2", "--mode", "nope"], "invalid choice"),
        (["src.run_baseline_v2", "--models", "no-such-model"], "unknown model 'no-such-model'"),
        (["src.run_baseline_v2", "--models", "smollm2-135m", "--tasks", "poetry"], "unknown task 'poetry'"),
        (["src.run_baseline_v2", "--models", "smollm2-135m", "--limit", "-4"], "expected a number >= 0"),
        (["src.run_baseline_v2"], "give --mode"),
        (["src.run_baseline_v2", "--models", "smollm2-135m", "--tasks", "math", "--data", "mirror"], "IA_DATA_DIR"),
    ]
    for args, expected in cases:
        r = run_cli(args, cwd=tmp_path)
        assert r.returncode != 0, args
        assert expected in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_preflight_failure_stops_before_any_work(tmp_path):
    r = run_cli(["src.run_baseline_v2", "--models", "gpt-4o,qwen2.5_7b", "--tasks", "math", "--results-dir",
                 str(tmp_path)], env={"OLLAMA_BASE_URL": "http://127.0.0.1:9"}, cwd=tmp_path)
    assert r.returncode == 3
    assert "preflight failed" in r.stderr and "OPENAI_API_KEY" in r.stderr and "Ollama is not reachable" in r.stderr
    assert "Traceback" not in r.stderr
    assert not list(tmp_path.glob("*.csv"))


def test_dry_run_runs_nothing(tmp_path):
    r = run_cli(["src.run_baseline_v2", "--models", "gpt-4o,smollm2-135m", "--tasks", "math,analysis", "--limit", "5", "--data", "builtin",
                 "--results-dir", str(tmp_path), "--dry-run"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "projected LM calls: 20" in r.stdout
    assert not any(tmp_path.iterdir())

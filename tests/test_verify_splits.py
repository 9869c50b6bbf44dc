"""src.verify_splits as a user runs it: disjoint splits and 100% gold scores for the built-in and mirror data."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from src.registry import load_config
from src.tasks import get_task
from src.tasks.sources import FolderSource
from src.tasks.splits import default_dev_size, load_task_data, optimization_splits

ROOT = Path(__file__).resolve().parents[1]
MIRROR = ROOT.parent / "shared" / "datasets"
TASKS = ["classification", "math", "qa", "extraction", "analysis", "synthesis", "agentic", "rag", "code"]


def verify(args: list[str], *, cwd: Path = ROOT, data_dir: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "IA_DATA_DIR"}
    env["PYTHONPATH"] = str(ROOT)
    if data_dir is not None:
        env["IA_DATA_DIR"] = str(data_dir)
    return subprocess.run([sys.executable, "-m", "src.verify_splits", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def _rows(stdout: str) -> dict[str, list[str]]:
    """task -> [train, dev, eval, of-train-split, disjoint, gold] from the printed table."""
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if parts and parts[0] in TASKS:
            rows[parts[0]] = parts[1:]
    return rows


def test_builtin_splits_are_disjoint_and_gold_scores_100(workdir):
    r = verify(["--data", "builtin", "--gold"], cwd=workdir)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = _rows(r.stdout)
    assert list(rows) == TASKS
    for task, cells in rows.items():
        train, dev, n_eval, n_split = map(int, cells[:4])
        assert train > 0 and dev > 0 and n_eval > 0 and train + dev == n_split, task
        assert cells[4] == "yes" and cells[5] == "1.0000", task
    assert "sandbox: mode=" in r.stdout and r.stdout.strip().endswith("gold answers score 100%")


def test_mirror_splits_are_disjoint_and_gold_scores_100(workdir):
    if not MIRROR.is_dir():
        pytest.skip(f"the offline dataset mirror is not at {MIRROR}")
    r = verify(["--data", "mirror", "--gold"], cwd=workdir, data_dir=MIRROR)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = _rows(r.stdout)
    assert list(rows) == TASKS and all(c[4] == "yes" and c[5] == "1.0000" for c in rows.values())
    assert rows["code"][:4] == ["300", "74", "164", "374"]  # MBPP train (dev = 20%) -> all of HumanEval
    assert rows["classification"][2] == "3080" and rows["extraction"][2] == "3453"
    assert f"source: mirror:{MIRROR.resolve()}" in r.stdout
    assert re.search(r"note qa: .*no 'train' split of hotpot_qa: derived train", r.stdout)


def test_optimization_splits_are_the_shared_definition(workdir):
    config = load_config()
    task = get_task("math", config)
    data = load_task_data(task, FolderSource(config.builtin_data_dir, "builtin", smoke=True))
    train, dev = optimization_splits(data)
    assert len(dev) == default_dev_size(len(data.train)) == len(data.train) // 5
    assert optimization_splits(data) == (train, dev)  # deterministic
    assert {e.id for e in train}.isdisjoint(e.id for e in dev)
    assert [default_dev_size(n) for n in (0, 1, 2, 10, 499, 500, 10_000)] == [0, 0, 1, 2, 99, 100, 100]


def test_a_gold_answer_its_metric_rejects_fails_the_run(workdir, tmp_path):
    """Exit status 1 (and the task named) when gold answers do not score 100%: here a numeric gold that is no number."""
    folder = tmp_path / "mirror" / "me__broken"
    folder.mkdir(parents=True)
    rows = [{"q": f"question {i}", "a": "n/a" if i == 5 else str(i)} for i in range(8)]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:4]))
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[4:]))
    (workdir / "tasks.json").write_text(json.dumps([{
        "key": "broken", "inputs": ["q"], "output": "a", "gold": "a", "metric": "numeric",
        "dataset": {"hub_id": "me/broken", "eval_split": "test", "train_split": "train"}}]))
    r = verify(["--data", "mirror", "--tasks", "broken,math", "--gold"], cwd=workdir, data_dir=tmp_path / "mirror")
    assert r.returncode == 1
    assert "FAILED: broken" in r.stderr
    assert re.search(r"^broken .*0\.7500 FAILED \(1: test-00001\)", r.stdout, re.MULTILINE)
    assert re.search(r"^math\s+FAILED: task 'math': .* has no 'test' split", r.stdout, re.MULTILINE)


def test_usage_errors_are_one_line(workdir):
    r = verify(["--data", "nowhere"], cwd=workdir)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    r = verify(["--data", "builtin", "--tasks", "nope"], cwd=workdir)
    assert r.returncode == 2 and r.stderr.startswith("error: unknown task 'nope'")

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
    """task -> [train, dev, eval, of-train-split, row overlap, group overlap, gold] from the printed table."""
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
        assert cells[4] == "0" and cells[5] in ("0", "-") and cells[6] == "1.0000", task
    assert "sandbox: mode=" in r.stdout and r.stdout.strip().endswith("gold answers score 100%")


def test_mirror_splits_are_disjoint_and_gold_scores_100(workdir):
    if not MIRROR.is_dir():
        pytest.skip(f"the offline dataset mirror is not at {MIRROR}")
    r = verify(["--data", "mirror", "--gold"], cwd=workdir, data_dir=MIRROR)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = _rows(r.stdout)
    assert list(rows) == TASKS and all(c[4] == "0" and c[5] in ("0", "-") and c[6] == "1.0000" for c in rows.values())
    # the derived and single splits are grouped by their sources, with zero group overlap
    assert {t for t, c in rows.items() if c[5] == "0"} == {"qa", "analysis", "synthesis", "agentic"}
    assert rows["analysis"][2] == "1635" and rows["agentic"][2] == "459"
    for task, by in (("analysis", "passage"), ("agentic", "term"), ("qa", "supporting titles"),
                     ("synthesis", "document")):
        assert re.search(rf"note {task}: grouped by {by}: \d+ groups in train, \d+ in eval", r.stdout), task
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


# ---- group-disjoint splits ----------------------------------------------------------------------------------------

def _share(a, b) -> int:
    keys = {k for ex in a for k in ex.group}
    return sum(1 for ex in b if keys & set(ex.group))


@pytest.mark.parametrize("key, by", [("analysis", "passage"), ("agentic", "term"), ("qa", "supporting titles"),
                                     ("synthesis", "document")])
def test_derived_splits_are_disjoint_by_source_group(workdir, key, by):
    """Before grouping, 181 of 1,635 BoolQ eval items shared their passage with train and 261 StrategyQA eval items
    a term: every source now lands on one side, for the eval split and the optimizer's train/dev alike."""
    if not MIRROR.is_dir():
        pytest.skip(f"the offline dataset mirror is not at {MIRROR}")
    config = load_config()
    task = get_task(key, config)
    data = load_task_data(task, FolderSource(MIRROR, "mirror"))
    train, dev = optimization_splits(data)
    assert all(ex.group for ex in data.train + data.eval)
    assert _share(data.train, data.eval) == _share(train, dev) == _share(dev, data.eval) == 0
    grouping = data.provenance["grouping"]
    assert grouping["by"] == by and grouping["eval_sharing_with_train"] == 0
    assert grouping["train_groups"] > 0 and grouping["eval_groups"] > 0
    if key == "analysis":  # passages really repeat: some groups hold several questions
        assert grouping["eval_groups"] < len(data.eval)


def test_ungrouped_tasks_split_exactly_as_before(workdir):
    """Grouping changes nothing where every example is its own group: the same seeded shuffle picks the same rows
    (so results of ungrouped tasks keep their train/dev/eval fingerprints)."""
    import random

    from src.tasks.splits import split_train_dev

    config = load_config()
    task = get_task("math", config)
    data = load_task_data(task, FolderSource(config.builtin_data_dir, "builtin", smoke=True))
    order = list(range(len(data.train)))
    random.Random(7).shuffle(order)
    old_dev = [data.train[i] for i in sorted(order[:4])]
    old_train = [data.train[i] for i in sorted(order[4:][:9])]
    assert split_train_dev(data.train, 9, 4, 7) == (old_train, old_dev)


def test_source_groups_are_connected_components():
    from src.tasks.example import TaskExample
    from src.tasks.splits import _partition, source_groups

    def ex(i, *keys):
        return TaskExample(str(i), {"q": str(i)}, {}, None, "", tuple(keys))

    # 0-1 share "a", 1-2 share "b" (so 0, 1, 2 are one group), 3 alone, 4-5 share "c", 6 has no key
    examples = [ex(0, "a"), ex(1, "a", "b"), ex(2, "b"), ex(3, "d"), ex(4, "c"), ex(5, "c"), ex(6)]
    assert source_groups(examples) == [0, 0, 0, 1, 2, 2, 3]
    for seed in range(30):
        part = _partition(examples, 0.4, seed)
        assert len(part) >= 3
        for group in ({0, 1, 2}, {4, 5}):
            assert group <= part or not (group & part), (seed, part)


def test_custom_task_group_field(workdir, tmp_path):
    """tasks.json's group_field keeps each source on one side of a derived split, and verify_splits reports it."""
    folder = tmp_path / "mirror" / "me__grouped"
    folder.mkdir(parents=True)
    rows = [{"q": f"question {i}", "a": str(i), "doc": f"doc{i // 4}"} for i in range(40)]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (workdir / "tasks.json").write_text(json.dumps([{
        "key": "grouped", "inputs": ["q"], "output": "a", "gold": "a", "metric": "numeric", "group_field": "doc",
        "dataset": {"hub_id": "me/grouped", "eval_split": "test", "train_split": "train"}}]))
    config = load_config()
    data = load_task_data(get_task("grouped", config), FolderSource(tmp_path / "mirror", "mirror"))
    assert _share(data.train, data.eval) == 0 and len(data.train) % 4 == 0
    assert data.provenance["grouping"]["by"] == "doc" and data.provenance["grouping"]["train_groups"] == 5
    r = verify(["--data", "mirror", "--tasks", "grouped", "--gold"], cwd=workdir, data_dir=tmp_path / "mirror")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^grouped\s+\d+\s+\d+\s+20\s+20\s+0\s+0\s+1\.0000", r.stdout, re.MULTILINE), r.stdout

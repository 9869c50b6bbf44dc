"""Tasks from the user's own files (tasks.json "dataset": {"path": ...} / {"train": ..., "eval": ...}): CSV, JSONL and
Parquet read alike, a seeded stratified hold-out, file hashes in provenance, one-line errors, and the worked example
(experiments/custom-example.yaml) end to end on the embedded model."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from src.errors import ConfigError, UserError
from src.registry import load_config
from src.tasks import get_task
from src.tasks.sources import resolve_source
from src.tasks.splits import load_task_data
from tests.conftest import ROOT, run_cli

TICKETS = ROOT / "experiments" / "data" / "tickets.csv"


def _task_entry(dataset: dict, **over) -> dict:
    entry = {"key": "tickets", "dataset": dataset, "inputs": ["subject", "body"], "output": "category",
             "gold": "category", "metric": "label",
             "labels": ["billing", "technical", "account", "shipping", "feedback"], "id_field": "ticket_id",
             "eval_fraction": 0.5}
    entry.update(over)
    return entry


def _write_tasks(workdir: Path, *entries: dict) -> None:
    (workdir / "tasks.json").write_text(json.dumps({"tasks": list(entries)}), encoding="utf-8")


def _rows() -> list[dict[str, str]]:
    with open(TICKETS, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _load(workdir: Path, key: str = "tickets"):
    config = load_config(workdir)
    task = get_task(key, config)
    return task, load_task_data(task, resolve_source("builtin", config, announce=False))


def test_the_example_file_is_split_stratified_with_its_hash_recorded(workdir):
    shutil.copy(TICKETS, workdir / "tickets.csv")
    _write_tasks(workdir, _task_entry({"path": "tickets.csv"}))
    task, data = _load(workdir)
    labels = Counter(r["category"] for r in _rows())
    got = Counter(ex.gold[0] for ex in data.eval)
    assert got == {k: round(v * 0.5) for k, v in labels.items()}  # every class held out in proportion
    assert not {ex.id for ex in data.train} & {ex.id for ex in data.eval}
    assert len(data.train) + len(data.eval) == len(_rows())
    sha = hashlib.sha256(TICKETS.read_bytes()).hexdigest()
    assert data.provenance["files_sha256"] == {"tickets.csv": sha}
    assert data.provenance["source"] == f"file:tickets.csv@sha256:{sha[:16]}"
    assert data.provenance["smoke_data"] is False
    assert any("stratified" in n for n in data.provenance["notes"])
    # a different seed gives a different but still stratified split
    _write_tasks(workdir, _task_entry({"path": "tickets.csv"}, split_seed=7))
    _, other = _load(workdir)
    assert {ex.id for ex in other.eval} != {ex.id for ex in data.eval}
    assert Counter(ex.gold[0] for ex in other.eval) == got


def test_csv_jsonl_and_parquet_give_the_same_examples(workdir):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _rows()
    shutil.copy(TICKETS, workdir / "t.csv")
    (workdir / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(rows), workdir / "t.parquet")
    seen = []
    for name in ("t.csv", "t.jsonl", "t.parquet"):
        _write_tasks(workdir, _task_entry({"path": name}))
        _, data = _load(workdir)
        seen.append((data.provenance["eval_fingerprint"], data.provenance["train_fingerprint"]))
    assert seen[0] == seen[1] == seen[2]


def test_separate_train_and_eval_files(workdir):
    rows = _rows()
    for name, part in (("train.csv", rows[::2]), ("eval.jsonl", rows[1::2])):
        path = workdir / name
        if name.endswith(".csv"):
            with open(path, "w", encoding="utf-8", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(part)
        else:
            path.write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
    _write_tasks(workdir, _task_entry({"train": "train.csv", "eval": "eval.jsonl"}))
    _, data = _load(workdir)
    assert {ex.id for ex in data.eval} == {r["ticket_id"] for r in rows[1::2]}
    assert {ex.id for ex in data.train} == {r["ticket_id"] for r in rows[::2]}
    assert set(data.provenance["files_sha256"]) == {"train.csv", "eval.jsonl"}


@pytest.mark.parametrize("dataset, message", [
    ({"path": "missing.csv"}, "data file missing.csv does not exist"),
    ({"path": "tickets.txt"}, "must end in .csv, .jsonl, .parquet"),
    ({"train": "tickets.csv"}, "needs both 'train' and 'eval'"),
    ({"train": "tickets.csv", "eval": "tickets.csv"}, "name the same file"),
    ({"path": "tickets.csv", "eval_split": "x"}, "takes no field(s) eval_split"),
    ({}, "'dataset' needs 'path'"),
])
def test_bad_dataset_declarations_are_one_line(workdir, dataset, message):
    shutil.copy(TICKETS, workdir / "tickets.csv")
    (workdir / "tickets.txt").write_text("x", encoding="utf-8")
    _write_tasks(workdir, _task_entry(dataset))
    with pytest.raises(ConfigError) as err:
        load_config(workdir)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("content, message", [
    ("ticket_id,subject,body\nT1,a,b\n", "no gold column 'category'"),
    ("ticket_id,subject,category\nT1,a,billing\n", "no input column(s) body"),
    ("ticket_id,subject,body,category\nT1,a,b,billing,extra\n", "row 2 has more cells"),
    ("ticket_id,subject,body,category\n", "holds no records"),
    (b"ticket_id,subject,body,category\nT1,\xff\xfe,b,billing\n", "not UTF-8"),
])
def test_bad_files_and_columns_are_one_line(workdir, content, message):
    path = workdir / "bad.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    _write_tasks(workdir, _task_entry({"path": "bad.csv"}))
    with pytest.raises(UserError) as err:
        _load(workdir)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_changed_file_is_a_new_dataset(workdir):
    shutil.copy(TICKETS, workdir / "tickets.csv")
    _write_tasks(workdir, _task_entry({"path": "tickets.csv"}))
    _, before = _load(workdir)
    with open(workdir / "tickets.csv", "a", encoding="utf-8") as fh:
        fh.write('T061,Refund for a broken mug,"The mug arrived chipped, please refund it.",billing\n')
    _, after = _load(workdir)
    assert before.provenance["source"] != after.provenance["source"]


def test_the_worked_example_runs_end_to_end(embedded_config, tmp_path):
    """experiments/custom-example.yaml as the README runs it (tasks.json copied from experiments/custom-tasks.json),
    with a small limit: all four stages complete on the embedded model, and every unit records the file's hash and
    the task's generation bound."""
    work = tmp_path / "work"
    (work / "experiments" / "data").mkdir(parents=True)
    shutil.copy(ROOT / "experiments" / "custom-tasks.json", work / "tasks.json")
    shutil.copy(TICKETS, work / "experiments" / "data" / "tickets.csv")
    proc = run_cli(["src.experiment", "--config", str(ROOT / "experiments" / "custom-example.yaml"),
                    "--limit", "4", "--results-dir", str(work / "results")], cwd=work, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metas = [json.loads(p.read_text()) for p in (work / "results").rglob("*.meta.json")]
    units = [m for m in metas if m.get("unit", {}).get("task") == "tickets"]
    assert {m["unit"]["phase"] for m in units} >= {"baseline", "optimized"}, [m.get("unit") for m in metas]
    for meta in units:
        assert meta["data"]["source"].startswith("file:experiments/data/tickets.csv@sha256:")
        assert meta["data"]["files_sha256"]["experiments/data/tickets.csv"]
        bound = meta["data"]["generation_bound"]["max_tokens"]
        assert meta["lm"]["max_tokens"] == bound == meta["lm"]["task_generation_bound"]
        assert meta["summary"]["n"] == 4
    assert list((work / "results").rglob("*.html")) or list((work / "results").rglob("*.md"))

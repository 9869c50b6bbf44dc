"""Proof that a task's splits are sound: optimizer-train, dev and eval pairwise disjoint by row AND by source group
(no eval example shares its passage / term / supporting article / document with a training example), and (--gold)
every gold answer scoring 100% through the task's own metric."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from src.errors import UserError
from src.tasks.base import Task
from src.tasks.example import Score, TaskExample
from src.tasks.sources import Source
from src.tasks.splits import load_task_data, optimization_splits, sharing


@dataclass
class TaskCheck:
    task: str
    source: str = ""
    n_train_split: int = 0
    train: int = 0
    dev: int = 0
    eval: int = 0
    overlaps: dict[str, int] = field(default_factory=dict)  # "train/eval" -> shared input texts
    # "train/eval" -> examples of the second set sharing a source group with the first; {} when not grouped
    group_overlaps: dict[str, int] = field(default_factory=dict)
    grouped_by: str | None = None
    grouping: dict | None = None
    eval_duplicates: int = 0
    gold: float | None = None
    gold_failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        gold_ok = self.gold is None or self.gold >= 1.0 - 1e-9
        return not self.error and not any(self.overlaps.values()) and not any(self.group_overlaps.values()) \
            and gold_ok


def check_task(task: Task, source: Source, gold: bool, workers: int, train_size: int | None = None,
               dev_size: int | None = None) -> TaskCheck:
    """Load one task from `source`, derive the optimizer splits, and test disjointness (and gold scores)."""
    out = TaskCheck(task.key)
    t0 = time.perf_counter()
    try:
        data = load_task_data(task, source)
        train, dev = optimization_splits(data, train_size, dev_size)
        out.source = data.provenance.get("source", "")
        out.notes = list(data.provenance.get("notes", []))
        out.n_train_split, out.train, out.dev, out.eval = len(data.train), len(train), len(dev), len(data.eval)
        keys = {name: [task.dedup_key(ex) for ex in exs] for name, exs in
                (("train", train), ("dev", dev), ("eval", data.eval))}
        sets = {name: set(v) for name, v in keys.items()}
        for a, b in (("train", "dev"), ("train", "eval"), ("dev", "eval")):
            out.overlaps[f"{a}/{b}"] = len(sets[a] & sets[b])
        out.eval_duplicates = len(keys["eval"]) - len(sets["eval"])
        out.grouped_by, out.grouping = task.group_by, data.provenance.get("grouping")
        if task.group_by:
            parts = {"train": train, "dev": dev, "eval": data.eval}
            for a, b in (("train", "dev"), ("train", "eval"), ("dev", "eval")):
                out.group_overlaps[f"{a}/{b}"] = sharing(parts[a], parts[b])
            # the whole train split (before the optimizer's train/dev division) against eval, as leakage is measured
            out.group_overlaps["train split/eval"] = sharing(data.train, data.eval)
        if gold:
            scores = score_gold(task, data.eval, workers)
            out.gold = task.aggregate(scores) if scores else 1.0
            out.gold_failures = [ex.id for ex, s in zip(data.eval, scores) if s.score < 1.0 - 1e-9]
    except UserError as exc:
        out.error = str(exc)
    out.seconds = time.perf_counter() - t0
    return out


def score_gold(task: Task, examples: list[TaskExample], workers: int) -> list[Score]:
    """Each example's gold labels fed to the task's own metric, as if a model had answered them (code: in the
    sandbox, concurrently)."""
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="ia-gold") as pool:
        return list(pool.map(lambda ex: task.score(ex, dict(ex.labels)), examples))

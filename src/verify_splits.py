"""Prove each task's optimizer-train/dev/eval splits are pairwise disjoint and (--gold) that gold answers score 100%.

    python -m src.verify_splits [--data auto|hub|mirror|builtin] [--tasks all|a,b] [--gold]
                                [--train-size N] [--dev-size N]

Train/dev come from src.tasks.data.optimization_splits (--train-size/--dev-size as an optimization preset takes
them; default dev = 20% of the train split, at most 100, the rest train).
Exit status: 0 when every selected task passes, 1 when any split overlaps, any gold answer fails its own
metric or a task cannot be loaded, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from src import cli
from src.config import load_config
from src.errors import UserError
from src.tasks import get_task, resolve_task_keys
from src.tasks.base import Score, Task, TaskExample
from src.tasks.code import CodeTask
from src.tasks.data import DATA_MODES, MAX_DEV_SIZE, OPTIMIZATION_SPLIT_SEED, optimization_splits, resolve_source
from src.tasks.sandbox import isolation


@dataclass
class TaskCheck:
    task: str
    source: str = ""
    n_train_split: int = 0
    train: int = 0
    dev: int = 0
    eval: int = 0
    overlaps: dict[str, int] = field(default_factory=dict)  # "train/eval" -> shared input texts
    eval_duplicates: int = 0
    gold: float | None = None
    gold_failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        gold_ok = self.gold is None or self.gold >= 1.0 - 1e-9
        return not self.error and not any(self.overlaps.values()) and gold_ok


def check_task(task: Task, source, gold: bool, workers: int, train_size: int | None = None,
               dev_size: int | None = None) -> TaskCheck:
    """Load one task from `source`, derive the optimizer splits, and test disjointness (and gold scores)."""
    out = TaskCheck(task.key)
    t0 = time.perf_counter()
    try:
        data = task.load(source)
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


def print_report(checks: list[TaskCheck], gold: bool, out=sys.stdout) -> None:
    header = f"{'task':<16}{'train':>8}{'dev':>6}{'eval':>7}  {'of train split':>14}  disjoint"
    if gold:
        header += "  gold"
    print(header, file=out)
    for c in checks:
        if c.error:
            print(f"{c.task:<16}FAILED: {c.error}", file=out)
            continue
        overlaps = [f"{k}={v}" for k, v in c.overlaps.items() if v]
        line = f"{c.task:<16}{c.train:>8}{c.dev:>6}{c.eval:>7}  {c.n_train_split:>14}  " \
               f"{'yes' if not overlaps else 'NO (' + ', '.join(overlaps) + ')':<8}"
        if gold:
            line += f"  {c.gold:.4f}" + ("" if c.gold >= 1.0 - 1e-9 else
                                         f" FAILED ({len(c.gold_failures)}: {', '.join(c.gold_failures[:5])})")
        print(line, file=out)
    notes = [(c.task, n) for c in checks if not c.error for n in
             c.notes + ([f"{c.eval_duplicates} eval examples repeat another eval input"] if c.eval_duplicates else [])]
    sources = sorted({c.source for c in checks if c.source})
    if sources:
        print(f"source: {', '.join(sources)}", file=out)
    for task, note in notes:
        print(f"  note {task}: {note}", file=out)


def main() -> int:
    p = cli.Parser(prog="python -m src.verify_splits", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="auto", choices=DATA_MODES,
                   help="auto: mirror if IA_DATA_DIR is set, else hub if reachable, else built-in smoke samples")
    p.add_argument("--tasks", default="all", help="comma-separated task keys, or 'all' (default)")
    p.add_argument("--gold", action="store_true", help="also score every eval example's gold answer with the "
                   "task's metric (code: canonical solutions in the sandbox); every task must reach 100%%")
    p.add_argument("--train-size", type=cli.whole_number(), default=None,
                   help="optimizer-train examples, as the optimization preset takes them (default: the rest)")
    p.add_argument("--dev-size", type=cli.whole_number(), default=None,
                   help=f"dev examples (default: 20%% of the train split, at most {MAX_DEV_SIZE})")
    p.add_argument("--workers", type=cli.whole_number(), default=max(2, os.cpu_count() or 2),
                   help="concurrent gold scorings (default: CPU count, at least 2)")
    args = p.parse_args()
    config = load_config()
    keys = resolve_task_keys(args.tasks, config)
    source = resolve_source(args.data, config)
    dev = f"{args.dev_size}" if args.dev_size is not None else f"min(20% of train, {MAX_DEV_SIZE})"
    train = f"{args.train_size}" if args.train_size else "the rest"
    print(f"verify_splits: data={args.data} -> {source.describe()}; dev = {dev}, train = {train}, "
          f"split seed {OPTIMIZATION_SPLIT_SEED}{'; gold answers scored' if args.gold else ''}")
    tasks = [get_task(key, config) for key in keys]
    checks = [check_task(task, source, args.gold, args.workers, args.train_size or None, args.dev_size)
              for task in tasks]
    print_report(checks, args.gold)
    if args.gold and any(isinstance(task, CodeTask) for task in tasks):
        print(f"sandbox: {isolation().summary()}")
    failed = [c.task for c in checks if not c.ok]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    what = "splits pairwise disjoint" + (", gold answers score 100%" if args.gold else "")
    print(f"ok: {len(checks)} task(s): {what}")
    return 0


if __name__ == "__main__":
    cli.run(main)

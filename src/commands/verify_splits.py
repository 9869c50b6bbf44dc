"""Prove each task's optimizer-train/dev/eval splits are pairwise disjoint, by row and by source group, and (--gold)
that gold answers score 100%.

    python -m src.verify_splits [--data auto|hub|mirror|builtin] [--tasks all|a,b] [--gold]
                                [--train-size N] [--dev-size N]

Train/dev come from src.tasks.splits.optimization_splits (--train-size/--dev-size as an optimization preset takes
them; default dev = 20% of the train split, at most 100, the rest train).
Columns: "rows" = examples whose input text appears in another set (pairs train/dev, train/eval, dev/eval, summed);
"groups" = examples sharing a source (BoolQ passage, StrategyQA term, HotpotQA supporting title, XSum document,
SQuAD article) with another set, including the whole train split against eval; "-" where a task has no grouping.
Exit status: 0 when every selected task passes, 1 when any split overlaps by row or group, any gold answer fails
its own metric or a task cannot be loaded, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys

from src.commands import common
from src.registry import load_config
from src.sandbox import isolation
from src.tasks import get_task, resolve_task_keys
from src.tasks.domains.humaneval import CodeTask
from src.tasks.sources import DATA_MODES, resolve_source
from src.tasks.splits import MAX_DEV_SIZE, OPTIMIZATION_SPLIT_SEED
from src.tasks.verify import TaskCheck, check_task


def print_report(checks: list[TaskCheck], gold: bool, out=sys.stdout) -> None:
    header = f"{'task':<16}{'train':>8}{'dev':>6}{'eval':>7}  {'of train split':>14}  {'rows':>4}  {'groups':>6}"
    if gold:
        header += "  gold"
    print(header, file=out)
    for c in checks:
        if c.error:
            print(f"{c.task:<16}FAILED: {c.error}", file=out)
            continue
        rows = sum(c.overlaps.values())
        groups = str(sum(c.group_overlaps.values())) if c.grouped_by else "-"
        line = f"{c.task:<16}{c.train:>8}{c.dev:>6}{c.eval:>7}  {c.n_train_split:>14}  {rows:>4}  {groups:>6}"
        if gold:
            line += f"  {c.gold:.4f}" + ("" if c.gold >= 1.0 - 1e-9 else
                                         f" FAILED ({len(c.gold_failures)}: {', '.join(c.gold_failures[:5])})")
        print(line, file=out)
    notes = [(c.task, n) for c in checks if not c.error for n in
             c.notes + ([f"{c.eval_duplicates} eval examples repeat another eval input"] if c.eval_duplicates else [])
             + _overlap_notes(c)]
    sources = sorted({c.source for c in checks if c.source})
    if sources:
        print(f"source: {', '.join(sources)}", file=out)
    for task, note in notes:
        print(f"  note {task}: {note}", file=out)


def _overlap_notes(c: TaskCheck) -> list[str]:
    """The grouping each grouped task uses, and where any row or group overlap is."""
    out = []
    if c.grouping:
        g = c.grouping
        out.append(f"grouped by {g['by']}: {g['train_groups']} groups in train, {g['eval_groups']} in eval "
                   f"({g['rule']})")
    rows = [f"{k}={v}" for k, v in c.overlaps.items() if v]
    groups = [f"{k}={v}" for k, v in c.group_overlaps.items() if v]
    if rows:
        out.append("ROW OVERLAP: " + ", ".join(rows))
    if groups:
        out.append(f"GROUP OVERLAP ({c.grouped_by}): " + ", ".join(groups))
    return out


def main() -> int:
    p = common.Parser(prog="python -m src.verify_splits", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="auto", choices=DATA_MODES,
                   help="auto: mirror if IA_DATA_DIR is set, else hub if reachable, else built-in smoke samples")
    p.add_argument("--tasks", default="all", help="comma-separated task keys, or 'all' (default)")
    p.add_argument("--gold", action="store_true", help="also score every eval example's gold answer with the "
                   "task's metric (code: canonical solutions in the sandbox); every task must reach 100%%")
    p.add_argument("--train-size", type=common.whole_number(), default=None,
                   help="optimizer-train examples, as the optimization preset takes them (default: the rest)")
    p.add_argument("--dev-size", type=common.whole_number(), default=None,
                   help=f"dev examples (default: 20%% of the train split, at most {MAX_DEV_SIZE})")
    p.add_argument("--workers", type=common.whole_number(1), default=max(2, os.cpu_count() or 2),
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
    what = "splits pairwise disjoint by row and group" + (", gold answers score 100%" if args.gold else "")
    print(f"ok: {len(checks)} task(s): {what}")
    return 0

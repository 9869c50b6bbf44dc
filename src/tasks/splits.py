"""A task's splits: train and eval examples from a source, derived deterministically where a split is missing,
kept disjoint, in a seeded eval order; and the optimizer's train/dev division of the train split."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from src.errors import UserError
from src.tasks.bounds import derive_bound
from src.tasks.example import TaskExample, fingerprint

if TYPE_CHECKING:
    from src.tasks.base import Task
    from src.tasks.sources import Source


@dataclass
class TaskData:
    """A task's examples by split, with the provenance every result's metadata records."""

    train: list[TaskExample]
    eval: list[TaskExample]
    provenance: dict[str, Any] = field(default_factory=dict)

    def eval_subset(self, limit: int | None) -> list[TaskExample]:
        return self.eval if not limit else self.eval[:limit]


def seeded_order(examples: list[TaskExample], seed: int) -> list[TaskExample]:
    """The examples in a seeded random order, the same on every machine: a `--limit N` prefix of it is a random
    sample of the split (HF splits are often sorted, e.g. by label), and the sample for N is inside the one for
    any larger N."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    return [examples[i] for i in order]


def source_groups(examples: list[TaskExample]) -> list[int]:
    """Each example's group: connected components of shared source keys (two examples sharing any key, directly
    or through others, are one group). Groups are numbered by first appearance; keyless examples are their own."""
    parent = list(range(len(examples)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, ex in enumerate(examples):
        for key in ex.group:
            if key in owner:
                a, b = find(owner[key]), find(i)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            else:
                owner[key] = i
    numbers: dict[int, int] = {}
    return [numbers.setdefault(find(i), len(numbers)) for i in range(len(examples))]


def _members(groups: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        out.setdefault(g, []).append(i)
    return out


def _grouped_order(groups: list[int], seed: int) -> list[int]:
    """Example indices, whole groups at a time, in a seeded order of the groups. With every example its own group
    this is random.Random(seed).shuffle(range(n)): ungrouped tasks split exactly as before grouping existed."""
    members = _members(groups)
    order = list(range(len(members)))
    random.Random(seed).shuffle(order)
    return [i for g in order for i in members[g]]


def _take_groups(groups: list[int], order: list[int], count: int) -> list[int]:
    """The leading indices of `order` (grouped order) covering whole groups until at least `count` are taken."""
    taken: list[int] = []
    for pos, i in enumerate(order):
        if len(taken) >= count and (pos == 0 or groups[order[pos - 1]] != groups[i]):
            break
        taken.append(i)
    return taken


def _partition(examples: list[TaskExample], fraction: float, seed: int,
               strata: list[str] | None = None) -> set[int]:
    """Indices of a seeded `fraction` of the examples, taken in whole source groups: deterministic across machines
    and Python versions, and no group is split between the part and the rest. With `strata` (each example's class),
    the fraction is taken from each class apart (a group counts in its first example's class), so a rare label is
    in both parts in proportion rather than by luck."""
    n = len(examples)
    if not n:
        return set()
    groups = source_groups(examples)
    order = _grouped_order(groups, seed)
    if strata:
        klass: dict[int, str] = {}
        for i, g in enumerate(groups):
            klass.setdefault(g, strata[i])
        taken: set[int] = set()
        for name in sorted(set(klass.values())):
            members = [i for i in order if klass[groups[i]] == name]
            taken.update(_take_groups(groups, members, round(len(members) * fraction)))
        if taken:
            return taken
    return set(_take_groups(groups, order, max(1, round(n * fraction))))


def sharing(a: list[TaskExample], b: list[TaskExample]) -> int:
    """How many examples of `b` share a source key with some example of `a` (0 when the sets are group-disjoint)."""
    keys = {k for ex in a for k in ex.group}
    return sum(1 for ex in b if any(k in keys for k in ex.group))


def load_task_data(task: Task, source: Source) -> TaskData:
    """Build train/eval examples, deriving missing splits deterministically and keeping eval out of train."""
    spec = task.spec
    task.prepare(source)
    notes: list[str] = []
    eval_src = task.split_source(source, spec.eval)
    train_src = task.split_source(source, spec.train)
    if not eval_src.has_split(spec.eval):
        raise UserError(f"task '{task.key}': {eval_src.describe()} has no '{spec.eval.split}' split of "
                        f"{spec.eval.folder} (nothing to evaluate on)")
    eval_records = eval_src.records(spec.eval)
    eval_examples = [task.example_from_record(r, i, spec.eval.split) for i, r in enumerate(eval_records)]

    strata = task.strata(eval_examples)
    if strata:
        notes.append(f"derived splits are stratified by {task.stratified_by}")
    if spec.train == spec.eval:
        held_out = _partition(eval_examples, spec.eval_fraction, spec.split_seed, strata)
        train = [ex for i, ex in enumerate(eval_examples) if i not in held_out]
        evals = [ex for i, ex in enumerate(eval_examples) if i in held_out]
        notes.append(f"single split '{spec.eval.split}': {len(evals)} eval / {len(train)} train by seeded "
                     f"{spec.eval_fraction:.0%} hold-out (seed {spec.split_seed})")
    elif not train_src.has_split(spec.train):
        moved = _partition(eval_examples, spec.derived_train_fraction, spec.split_seed, strata)
        train = [ex for i, ex in enumerate(eval_examples) if i in moved]
        evals = [ex for i, ex in enumerate(eval_examples) if i not in moved]
        notes.append(f"{train_src.describe()} has no '{spec.train.split}' split of {spec.train.folder}: derived "
                     f"train = seeded {spec.derived_train_fraction:.0%} of '{spec.eval.split}' "
                     f"({len(train)} train / {len(evals)} eval, seed {spec.split_seed})")
    else:
        train_records = train_src.records(spec.train)
        train = [task.example_from_record(r, i, spec.train.split) for i, r in enumerate(train_records)]
        evals = eval_examples

    if spec.eval_order == "seeded":
        evals = seeded_order(evals, spec.split_seed)
        notes.append(f"eval order: seeded permutation (seed {spec.split_seed}); --limit N scores its first N")
    else:
        notes.append("eval order: the split's own (file) order; --limit N scores its first N")

    eval_keys = {task.dedup_key(ex) for ex in evals}
    kept = [ex for ex in train if task.dedup_key(ex) not in eval_keys]
    if len(kept) != len(train):
        notes.append(f"dropped {len(train) - len(kept)} train examples whose input text also appears in eval")
    # Real splits that share sources (a custom dataset's): train keeps only examples whose sources eval lacks.
    eval_sources = {k for ex in evals for k in ex.group}
    separate = [ex for ex in kept if not any(k in eval_sources for k in ex.group)]
    if len(separate) != len(kept):
        notes.append(f"dropped {len(kept) - len(separate)} train examples that share their {task.group_by or 'source'} "
                     f"with an eval example")
    train = _dedup(task, separate)
    provenance = {
        "source": eval_src.describe(),
        "train_source": train_src.describe(),
        "smoke_data": bool(eval_src.smoke or train_src.smoke),
        "eval_split": f"{spec.eval.folder}/{spec.eval.split}",
        "eval_order": f"seeded:{spec.split_seed}" if spec.eval_order == "seeded" else "file",
        "train_split": f"{spec.train.folder}/{spec.train.split}",
        "n_train": len(train),
        "n_eval": len(evals),
        "eval_fingerprint": fingerprint(evals),
        "train_fingerprint": fingerprint(train),
        "grouping": grouping_record(task, train, evals),
        "generation_bound": derive_bound(task, train),
        "notes": notes,
    }
    files = {**train_src.file_hashes(), **eval_src.file_hashes()}
    if files:  # the user's own data files, by path as written: a changed file is a new dataset
        provenance["files_sha256"] = files
    return TaskData(train=train, eval=evals, provenance=provenance)


def grouping_record(task: Task, train: list[TaskExample], evals: list[TaskExample]) -> dict[str, Any] | None:
    """What provenance records about the split's grouping: what examples are grouped by, how many groups each
    side has, and how many eval examples share a source with train (0 by construction)."""
    if not task.group_by:
        return None
    return {"by": task.group_by, "rule": "connected components of shared sources; whole groups go to one side",
            "train_groups": len(set(source_groups(train))), "eval_groups": len(set(source_groups(evals))),
            "eval_sharing_with_train": sharing(train, evals)}


def _dedup(task: Task, examples: list[TaskExample]) -> list[TaskExample]:
    seen: set[str] = set()
    out = []
    for ex in examples:
        key = task.dedup_key(ex)
        if key not in seen:
            seen.add(key)
            out.append(ex)
    return out


def split_train_dev(train: list[TaskExample], train_size: int | None, dev_size: int, seed: int) -> tuple[list, list]:
    """Divide the train split into an optimizer train set and a dev set (for picking the best seed), disjointly
    and in whole source groups (dev may then hold a few more than dev_size examples; ungrouped tasks get exactly
    dev_size, the same examples as before grouping existed)."""
    groups = source_groups(train)
    order = _grouped_order(groups, seed)
    dev_idx = _take_groups(groups, order, dev_size) if dev_size else []
    rest = order[len(dev_idx):]
    if train_size:
        rest = rest[:train_size]
    return [train[i] for i in sorted(rest)], [train[i] for i in sorted(dev_idx)]


# One fixed train/dev division for every optimizer seed, so all seeds compete on the same dev set (the value the
# optimization runner uses, src.optimize.SPLIT_SEED).
OPTIMIZATION_SPLIT_SEED = 2025
MAX_DEV_SIZE = 100


def default_dev_size(n_train: int) -> int:
    """20% of the train split, at most MAX_DEV_SIZE, at least 1 once there are two examples to divide."""
    if n_train < 2:
        return 0
    return min(max(n_train // 5, 1), MAX_DEV_SIZE)


def optimization_splits(task_data: TaskData, train_size: int | None = None, dev_size: int | None = None,
                        seed: int = OPTIMIZATION_SPLIT_SEED) -> tuple[list[TaskExample], list[TaskExample]]:
    """The optimizer's (train, dev) from a task's train split: the one definition the optimization runner and
    src.verify_splits share. Eval is never touched."""
    size = default_dev_size(len(task_data.train)) if dev_size is None else dev_size
    return split_train_dev(task_data.train, train_size, size, seed)
def optimization_sets(task: Task, data: TaskData, train_size: int, dev_size: int) -> tuple[list, list]:
    """Optimizer-train and dev sets, both from the train split; the eval split never reaches an optimizer."""
    train, dev = optimization_splits(data, train_size, dev_size)
    if len(train) < 2 or not dev:
        raise UserError(f"task '{task.key}': the train split has {len(data.train)} examples, too few for "
                        f"{dev_size} dev + optimizer-train examples (lower --dev-size/--train-size)")
    assert_disjoint_from_eval(task, data.eval, train + dev)
    return train, dev


def assert_disjoint_from_eval(task: Task, eval_examples: list[TaskExample], used: list[TaskExample]) -> None:
    """Hard stop if any eval example (by id or by normalised input) is about to be used for optimization."""
    eval_ids = {ex.id for ex in eval_examples}
    eval_keys = {task.dedup_key(ex) for ex in eval_examples}
    leaked = [ex.id for ex in used if ex.id in eval_ids or task.dedup_key(ex) in eval_keys]
    if leaked:
        raise RuntimeError(f"eval examples reached the optimizer for task {task.key}: {leaked[:5]}")



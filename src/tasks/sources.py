"""Where task records come from: the Hugging Face hub, a local mirror in the HF layout, or the built-in samples."""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.errors import UserError

if TYPE_CHECKING:
    from src.registry import Config, SplitRef

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

    def file_hashes(self) -> dict[str, str]:
        """sha256 of each data file this source reads, by path as the user wrote it ({} for datasets)."""
        return {}


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
    if mode == "auto" and announce:  # (DataCache names the tasks that actually read them instead)
        print("warning: no IA_DATA_DIR and the Hugging Face hub is unreachable: using the built-in SMOKE samples "
              "(20-odd examples per task; they prove the pipeline, they are not a benchmark)", file=sys.stderr)
    return FolderSource(config.builtin_data_dir, "builtin", smoke=True)

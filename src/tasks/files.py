"""Task data from a user's own files (tasks.json "dataset": {"path": ...} or {"train": ..., "eval": ...}): CSV, JSONL or
Parquet, read as records like any split, and named in provenance by path and sha256 so a changed file is a new
dataset (its old results refuse to resume rather than mix).

Split names: a single file is the split "data" (both train and eval name it, so src.tasks.splits holds out a seeded,
stratified eval fraction); separate files are the splits "train" and "eval".
"""

from __future__ import annotations

import csv
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.errors import UserError
from src.tasks.sources import Source

if TYPE_CHECKING:
    from src.registry import SplitRef


@lru_cache(maxsize=32)
def _sha256(path: str, mtime: float, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    st = path.stat()
    return _sha256(str(path), st.st_mtime, st.st_size)


def _read_csv(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames:
                raise UserError(f"{path}: the CSV has no header row")
            blank = [i + 1 for i, name in enumerate(reader.fieldnames) if not (name or "").strip()]
            if blank:
                raise UserError(f"{path}: header column(s) {blank} have no name")
            rows = []
            for lineno, row in enumerate(reader, 2):
                if None in row:  # more cells than header columns
                    raise UserError(f"{path}: row {lineno} has more cells than the header has columns")
                rows.append({k: v for k, v in row.items()})
            return rows
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text (save the CSV as UTF-8)") from None
    except csv.Error as exc:
        raise UserError(f"{path}: not a readable CSV ({exc})") from None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UserError(f"{path}: line {lineno} is not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise UserError(f"{path}: line {lineno} is not a JSON object (one record per line)")
                rows.append(row)
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    return rows


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(f"{path}: reading Parquet needs pyarrow: pip install -r requirements.txt") from None
    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a damaged file
        raise UserError(f"{path}: not a readable Parquet file ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:160]})") from None


@lru_cache(maxsize=32)
def _records(path: str, sha: str) -> tuple[dict[str, Any], ...]:
    p = Path(path)
    reader = {".csv": _read_csv, ".jsonl": _read_jsonl, ".parquet": _read_parquet}[p.suffix.lower()]
    rows = reader(p)
    if not rows:
        raise UserError(f"{p}: holds no records")
    return tuple(rows)


class FileSource(Source):
    """Records from a user's data files; `files` maps split name ("data", or "train"/"eval") to a path."""

    name = "file"

    def __init__(self, files: dict[str, Path], shown: dict[str, str]):
        self.files = files
        self.shown = shown  # each path as the user wrote it (results never record a machine's absolute path)

    def _path(self, ref: SplitRef) -> Path:
        return self.files[ref.split]

    def has_split(self, ref: SplitRef) -> bool:
        return ref.split in self.files and self.files[ref.split].is_file()

    def records(self, ref: SplitRef) -> list[dict[str, Any]]:
        path = self._path(ref)
        if not path.is_file():
            raise UserError(f"data file {path} does not exist")
        return [dict(r) for r in _records(str(path), file_sha256(path))]

    def class_names(self, ref: SplitRef, column: str) -> list[str] | None:
        return None  # a CSV/JSONL/Parquet file carries its labels as text

    def file_hashes(self) -> dict[str, str]:
        return {self.shown[split]: file_sha256(path) for split, path in sorted(self.files.items()) if path.is_file()}

    def describe(self) -> str:
        return "file:" + ",".join(f"{shown}@sha256:{h[:16]}" for shown, h in self.file_hashes().items())

"""Writing and reading result files atomically and without secrets, checking that a rendered CSV is still what was
written, checking a results folder can be written before any work, and moving old files aside (--force archives,
never deletes)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from src.errors import UserError
from src.results.provenance import scrub, scrub_value
from src.results.record import CSV_COLUMNS, Record


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and a rename: a reader (or a run killed mid-write) sees the old file or the new
    one, never half of one. Temporaries left by a killed writer of the same file are removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        if not _alive(stale.name.rsplit("-", 1)[-1]):
            stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _alive(pid: str) -> bool:
    """Is `pid` a running process other than this one (whose temporary file must be left alone)?"""
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def csv_text(records: Iterable[Record]) -> str:
    """A result CSV's exact text (secrets scrubbed from every cell)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for rec in records:
        writer.writerow({k: scrub(v) if isinstance(v, str) else v for k, v in asdict(rec).items()})
    return buf.getvalue()


def write_csv(path: Path, records: Iterable[Record]) -> str:
    """Write a result CSV atomically; returns the sha256 of what was written (recorded in its sidecar)."""
    text = csv_text(records)
    atomic_write_text(path, text)
    return text_sha256(text)


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def csv_damage(path: Path, sha256: str | None, records: dict[str, Record]) -> str | None:
    """Why a rendered result CSV no longer holds what it was rendered from (`records`, its journal's), or None.

    With the sha256 its sidecar recorded, any change is damage. Sidecars written before that was recorded are
    checked by content instead: the CSV must parse, hold each journal record exactly once and nothing else, with
    the same prediction and score.
    """
    if not path.is_file():
        return "missing"
    if sha256:
        return None if file_sha256(path) == sha256 else "its bytes differ from the sha256 its sidecar recorded"
    try:
        rows = read_csv(path)
    except UserError as exc:
        return f"it cannot be read ({str(exc).split(': ', 1)[-1]})"
    ids = [r.key for r in rows]
    if len(ids) != len(set(ids)):
        return "it repeats example ids"
    if set(ids) != set(records):
        return f"it holds {len(ids)} rows for the journal's {len(records)} records"
    for row in rows:
        rec = records[row.key]
        if (row.prediction, row.score, row.is_correct, row.error) != (rec.prediction, rec.score, rec.is_correct,
                                                                       rec.error):
            return f"its row for example {row.example_id} differs from the journal"
    return None


def read_csv(path: Path) -> list[Record]:
    """Read a result CSV; a file that is not one of ours gives a one-line error naming it."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in ("model", "task", "example_id", "score", "is_correct") if c not in (reader.fieldnames or [])]
            if missing:
                raise UserError(f"{path}: not a result CSV (missing column(s) {', '.join(missing)})")
            return [Record.from_dict(row) for row in reader]
    except (ValueError, TypeError, csv.Error, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: corrupt result CSV ({exc})") from None


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically, with every string in it scrubbed of secrets."""
    text = json.dumps(obj, indent=2, ensure_ascii=False, default=str)
    atomic_write_text(path, json.dumps(scrub_value(json.loads(text)), indent=2, ensure_ascii=False) + "\n")


def scrub_file(path: Path) -> bool:
    """Remove known secrets from a file another library wrote (a saved DSPy program, whose demos and instructions
    came from model replies); True when it had any. JSON is cleaned value by value, so an escaped key goes too."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except ValueError:
        clean = scrub(text)
    else:
        cleaned = scrub_value(data)
        clean = text if cleaned == data else json.dumps(cleaned, indent=2, ensure_ascii=False) + "\n"
    if clean == text:
        return False
    atomic_write_text(path, clean)
    return True


def writable_dir(path: Path, what: str) -> Path:
    """`path` if it is (or can be created as) a folder this process can write into, else a one-line UserError naming
    `what` (e.g. --results-dir) and the reason: it is a file, it is under a file, it is read-only. Nothing is
    created: the folder itself, or its nearest existing parent, is probed by creating and removing a hidden file, so
    a read-only mount or an immutable folder is caught whoever runs (root included)."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file, not a folder")
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{what} {path} cannot be created: {probe} is a file, not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".ia-write-check-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        where = "" if probe == path else f" (its nearest existing folder {probe} is not writable)"
        raise UserError(f"{what} {path} is not writable{where}: {reason}") from None
    return path


def archive(paths: list[Path], results_dir: Path, *, copy: bool = False) -> Path | None:
    """Move files aside (--force): results are replaced only after the old ones are kept under .archive/. `copy`
    keeps the originals in place (a damaged journal about to be rewritten from what is readable in it)."""
    existing = [p for p in paths if p.exists()]
    if not existing:
        return None
    dest = results_dir / ".archive" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    dest.mkdir(parents=True, exist_ok=True)
    for p in existing:
        if copy:
            shutil.copy2(p, dest / p.name)
        else:
            shutil.move(str(p), dest / p.name)
    return dest


def csv_float(x: float | None) -> str:
    """A machine-readable CSV cell: six decimals, empty when missing, never "-0.000000"."""
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{round(x, 6) + 0.0:.6f}"

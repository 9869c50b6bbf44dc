"""Writing and reading result files atomically, and moving old ones aside (--force archives, never deletes)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
import math
from typing import Any

from src.errors import UserError
from src.results.record import CSV_COLUMNS, Record


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_csv(path: Path, records: Iterable[Record]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for rec in records:
        writer.writerow(asdict(rec))
    atomic_write_text(path, buf.getvalue())


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
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot be read as JSON ({exc})") from None


def archive(paths: list[Path], results_dir: Path) -> Path | None:
    """Move files aside (--force): results are replaced only after the old ones are kept under .archive/."""
    existing = [p for p in paths if p.exists()]
    if not existing:
        return None
    dest = results_dir / ".archive" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    dest.mkdir(parents=True, exist_ok=True)
    for p in existing:
        shutil.move(str(p), dest / p.name)
    return dest


def csv_float(x: float | None) -> str:
    """A machine-readable CSV cell: six decimals, empty when missing, never "-0.000000"."""
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{round(x, 6) + 0.0:.6f}"

"""The per-example journal: append-only JSON lines, crash-safe, the source of truth a unit's CSV is rendered from."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from src.results.files import atomic_write_text
from src.results.provenance import scrub_value
from src.results.record import Record


class Journal:
    """Append-only JSON lines: a header describing the unit, then one record per finished example (per attempt,
    with --repeats: `records` is keyed by src.results.record.record_key).

    A killed run leaves at most one torn last line; it is ignored, and cut off before the next run appends (so the
    next record starts on a line of its own). Lines damaged anywhere else (a disk error, an editor) are skipped and
    counted in `damaged`: the examples they held are simply not done, and the journal is rewritten from what is
    readable before anything is appended (the caller archives the damaged file first). A header that differs from
    the current unit means the old results were made under other settings: they are never mixed in, and never
    replaced without --force.
    """

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._fh = None
        self.header: dict[str, Any] | None = None
        self.records: dict[str, Record] = {}
        self.damaged = 0  # unreadable lines other than a torn last one
        self.torn = False  # the last line has no newline (a write cut short)

    def load(self) -> None:
        self.header, self.records, self.damaged, self.torn = None, {}, 0, False
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        self.torn = bool(lines[-1])  # bytes after the last newline: an unfinished write
        for i, raw in enumerate(lines):
            if not raw.strip():
                continue
            last = i == len(lines) - 1
            if not self._take(raw) and not last:
                self.damaged += 1

    def _take(self, raw: bytes) -> bool:
        """Read one line into header/records; False when it is unreadable."""
        try:
            obj = json.loads(raw.decode("utf-8"))
            if not isinstance(obj, dict):
                return False
            if obj.get("type") == "header" and isinstance(obj.get("unit"), dict):
                if self.header is None:
                    self.header = obj["unit"]
                return True
            if obj.get("type") == "record" and isinstance(obj.get("record"), dict):
                rec = Record.from_dict(obj["record"])
                if isinstance(rec.example_id, (int, float)) and not isinstance(rec.example_id, bool):
                    rec.example_id = str(rec.example_id)
                if not isinstance(rec.example_id, str) or not rec.example_id:
                    return False
                self.records[rec.key] = rec  # a later line (retried error) supersedes
                return True
        except (ValueError, TypeError, UnicodeDecodeError):
            return False
        return False

    @property
    def needs_rewrite(self) -> bool:
        """Damaged lines, a torn last line, or records without a readable header: append only to a clean file."""
        return self.damaged > 0 or self.torn or (self.header is None and bool(self.records))

    def start(self, unit: dict[str, Any]) -> None:
        """Open for appending under `unit`'s header (written first when the file is new)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.is_file() or self.header is None or self.needs_rewrite:
            self.rewrite(unit)
        self._fh = open(self.path, "a", encoding="utf-8")

    def rewrite(self, unit: dict[str, Any]) -> None:
        """Replace the file, atomically, by `unit`'s header and every readable record."""
        lines = [self._line({"type": "header", "unit": unit})]
        lines += [self._line({"type": "record", "record": asdict(r)}) for r in self.records.values()]
        atomic_write_text(self.path, "".join(lines))
        self.header, self.damaged, self.torn = unit, 0, False

    @staticmethod
    def _line(obj: dict[str, Any]) -> str:
        return json.dumps(scrub_value(obj), ensure_ascii=False) + "\n"

    def append(self, record: Record) -> None:
        with self._lock:
            if self._fh is None:
                raise RuntimeError(f"{self.path}: the journal is closed")  # a late writer is a bug, never data
            self._fh.write(self._line({"type": "record", "record": asdict(record)}))
            self._fh.flush()
            self.records[record.key] = record

    def close(self) -> None:
        with self._lock:
            if self._fh:
                self._fh.close()
                self._fh = None

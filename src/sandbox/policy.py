"""The opt-in for running generated code without kernel isolation (`--unsafe-exec`): refused by default with a
one-line error naming the flag, and recorded in the run's provenance when used."""

from __future__ import annotations

from typing import Any

from src.errors import UserError
from src.sandbox.host import Isolation, SandboxUnavailable, isolation

UNSAFE_FLAG = "--unsafe-exec"
_unsafe_exec = False


def allow_unsafe_exec(allowed: bool = True) -> None:
    """The user asked to run generated code even where only the interpreter guard and rlimits contain it."""
    global _unsafe_exec
    _unsafe_exec = allowed


def unsafe_exec_allowed() -> bool:
    return _unsafe_exec


def require_isolation() -> Isolation:
    """The sandbox's isolation, or a one-line UserError when it has no kernel layers and the user did not opt in."""
    try:
        iso = isolation()
    except SandboxUnavailable as exc:
        if _unsafe_exec:
            raise
        raise UserError(_refusal(exc.why_no_namespaces)) from None
    if not iso.kernel_isolation and not _unsafe_exec:
        raise UserError(_refusal(iso.notes[0] if iso.notes else "no namespaces"))
    return iso


def _refusal(why: str) -> str:
    return (f"the code sandbox has no kernel isolation on this machine ({why}), so generated code would run with "
            f"only rlimits and an interpreter guard around it; rerun with {UNSAFE_FLAG} to accept that")


def provenance() -> dict[str, Any]:
    """What a run's sidecars record about the opt-in: nothing unless it was used."""
    if not _unsafe_exec:
        return {}
    try:
        summary = isolation().summary()
    except UserError as exc:
        summary = f"unavailable: {exc}"
    return {"sandbox": {"unsafe_exec": True, "isolation": summary}}

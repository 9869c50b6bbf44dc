"""Saved optimized programs: loading one with a DSPy-version guard, and describing what optimization changed."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dspy

from src.errors import UserError
from src.results.naming import program_path, sidecar_path
from src.results.schema import ProgramMeta

if TYPE_CHECKING:
    from src.tasks.base import Task


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def saved_dspy_version(path: Path) -> str | None:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a saved DSPy program ({exc})") from None
    return ((state.get("metadata") or {}).get("dependency_versions") or {}).get("dspy")


def load_program(task: Task, path: Path, *, allow_version_mismatch: bool = False,
                 chain_of_thought: bool | None = None) -> tuple[dspy.Module, dict[str, Any]]:
    """The task's program with a saved state applied, and the facts a result sidecar records about it.

    A program saved under another DSPy version is refused: the original study's tables were confounded by
    mixing DSPy 2.6 and 3.1 (prompt formats differ), so mixing must be a deliberate choice.
    """
    if not path.is_file():
        raise UserError(f"no saved program at {path}: run python -m src.run_optimization first")
    saved = saved_dspy_version(path)
    current = importlib.metadata.version("dspy")
    if saved != current and not allow_version_mismatch:
        raise UserError(f"{path} was saved with DSPy {saved}, this is DSPy {current}: re-optimize, or pass "
                        f"--allow-version-mismatch to evaluate it anyway (results will say so)")
    program = task.program(chain_of_thought)
    try:
        program.load(str(path))
    except Exception as exc:  # noqa: BLE001 - a foreign/corrupt state file
        raise UserError(f"{path}: cannot be loaded into the {task.key} program ({type(exc).__name__}: {exc})") from None
    side = ProgramMeta.read_optional(sidecar_path(path)) or ProgramMeta()
    info = {"kind": "optimized", "file": str(path), "sha256": file_sha256(path), "saved_dspy": saved,
            "version_mismatch": saved != current, "optimizer": side.optimizer, "chosen_seed": side.chosen_seed,
            "n_demos_total": side.n_demos_total, "teacher": side.teacher}
    return program, info


def saved_program(task: Task, model_key: str, results_dir: Path, optimizer: str, *,
                  allow_version_mismatch: bool = False) -> tuple[dspy.Module, dict[str, Any]]:
    """The optimization unit's chosen program for (model, task), ready to evaluate, and its info for the sidecar;
    a unit whose every seed failed is a one-line error."""
    path = program_path(results_dir, model_key, task.key, optimizer)
    side = ProgramMeta.read_optional(sidecar_path(path)) or ProgramMeta()
    if side.status == "failed":
        raise UserError(f"{path.name}: optimization failed for every seed ({side.reason})")
    return load_program(task, path, allow_version_mismatch=allow_version_mismatch,
                        chain_of_thought=side.is_chain_of_thought)


def describe_program(program: dspy.Module) -> dict[str, dict[str, Any]]:
    """Per predictor: number of demos and the instruction text (what optimization changed)."""
    out = {}
    for name, predictor in program.named_predictors():
        out[name] = {"n_demos": len(predictor.demos or []), "instructions": predictor.signature.instructions}
    return out

"""A benchmark item mapped onto a task's signature, and the metric's verdict on one prediction (no DSPy here)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TaskExample:
    """One benchmark item, already mapped onto the task's signature."""

    id: str
    inputs: dict[str, Any]  # the signature's input fields
    labels: dict[str, Any]  # the signature's output fields filled with the gold answer (labelled demos, --gold)
    gold: Any  # what the metric compares against (JSON-serialisable)
    gold_text: str  # ground truth as written in result CSVs
    # The example's sources (e.g. its passage, its StrategyQA term, its HotpotQA supporting titles): examples that
    # share any of them are one group and never straddle a split. Empty: the example is its own group.
    # Not part of the fingerprint, so a result's identity does not depend on it.
    group: tuple[str, ...] = ()


@dataclass
class Score:
    """The metric's verdict on one prediction."""

    score: float  # primary per-example score in [0, 1]
    correct: bool  # for binary metrics score == 1; for continuous ones score >= the task's threshold
    prediction: str  # the prediction as text, for the CSV
    extras: dict[str, float] = field(default_factory=dict)  # secondary metrics (and corpus-level counts)


_WS = re.compile(r"\s+")


def source_key(kind: str, text: str) -> str:
    """A compact group key for a long source text (a passage, a document): kind + hash of its normalised text."""
    return f"{kind}:{hashlib.sha1(normalize_input(text).encode()).hexdigest()[:16]}"


def normalize_input(text: str) -> str:
    """Key used to prove split disjointness: case- and whitespace-insensitive."""
    return _WS.sub(" ", text).strip().lower()


def outputs_of(prediction: Any, fields: list[str]) -> dict[str, Any]:
    """The output fields of a dspy.Prediction as a plain dict (missing fields are None)."""
    return {k: getattr(prediction, k, None) for k in fields}


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError:
        return str(value)


def fingerprint(examples: list[TaskExample]) -> str:
    """Hash of the examples' ids, inputs and gold: two runs compare only if their fingerprints match."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps([ex.id, ex.inputs, ex.gold], sort_keys=True, ensure_ascii=False, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]

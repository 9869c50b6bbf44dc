"""The Task contract every domain implements: examples from records, a DSPy signature/program, and a metric."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dspy

if TYPE_CHECKING:
    from src.config import Config, TaskSpec
    from src.tasks.data import Source, TaskData


@dataclass(frozen=True)
class TaskExample:
    """One benchmark item, already mapped onto the task's signature."""

    id: str
    inputs: dict[str, Any]  # the signature's input fields
    labels: dict[str, Any]  # the signature's output fields filled with the gold answer (labelled demos, --gold)
    gold: Any  # what the metric compares against (JSON-serialisable)
    gold_text: str  # ground truth as written in result CSVs

    def to_dspy(self) -> dspy.Example:
        # ia_id / ia_gold ride along outside the signature: adapters ignore them, metrics read them.
        return dspy.Example(**self.inputs, **self.labels, ia_id=self.id, ia_gold=self.gold).with_inputs(*self.inputs)


@dataclass
class Score:
    """The metric's verdict on one prediction."""

    score: float  # primary per-example score in [0, 1]
    correct: bool  # for binary metrics score == 1; for continuous ones score >= the task's threshold
    prediction: str  # the prediction as text, for the CSV
    extras: dict[str, float] = field(default_factory=dict)  # secondary metrics (and corpus-level counts)


_WS = re.compile(r"\s+")


def normalize_input(text: str) -> str:
    """Key used to prove split disjointness: case- and whitespace-insensitive."""
    return _WS.sub(" ", text).strip().lower()


class Task:
    """Base class: a task = data (records -> examples) + solver (signature/program) + scorer (metric)."""

    signature: type[dspy.Signature]
    chain_of_thought: bool = False
    binary: bool = True  # primary score is 0/1 (Wilson intervals, McNemar) rather than continuous
    correct_threshold: float = 1.0  # continuous metrics: score at or above this counts as correct

    def __init__(self, spec: TaskSpec, config: Config):
        self.spec = spec
        self.config = config
        self.key = spec.key

    # ---- data -------------------------------------------------------------------------------
    def prepare(self, source: Source) -> None:
        """Read per-source facts before examples are built (e.g. ClassLabel names); default: nothing."""

    def example_from_record(self, record: dict[str, Any], index: int, split: str) -> TaskExample:
        raise NotImplementedError

    def record_id(self, record: dict[str, Any], index: int, split: str, id_field: str | None = None) -> str:
        if id_field and record.get(id_field) not in (None, ""):
            return str(record[id_field])
        return f"{split}-{index:05d}"

    def dedup_key(self, example: TaskExample) -> str:
        return normalize_input(" \n ".join(str(example.inputs[k]) for k in sorted(example.inputs)))

    def load(self, source: Source) -> TaskData:
        from src.tasks.data import load_task_data

        return load_task_data(self, source)

    # ---- solver -----------------------------------------------------------------------------
    def program(self, chain_of_thought: bool | None = None) -> dspy.Module:
        """The unoptimized program; chain_of_thought overrides the domain's choice (the cot_zero_shot arm)."""
        cot = self.chain_of_thought if chain_of_thought is None else chain_of_thought
        return dspy.ChainOfThought(self.signature) if cot else dspy.Predict(self.signature)

    @property
    def output_fields(self) -> list[str]:
        return list(self.signature.output_fields)

    # ---- scorer -----------------------------------------------------------------------------
    def score(self, example: TaskExample, outputs: dict[str, Any]) -> Score:
        """Score a prediction given as the signature's output fields (a Prediction or the gold labels)."""
        raise NotImplementedError

    def aggregate(self, scores: list[Score]) -> float:
        """Corpus-level primary metric; the mean unless a domain defines it otherwise (NER micro-F1)."""
        return sum(s.score for s in scores) / len(scores) if scores else float("nan")

    def metric(self, example: dspy.Example, prediction: Any, trace: Any = None) -> float:
        """DSPy metric for optimizers: the same scorer, on a dspy.Example carrying ia_id/ia_gold."""
        outputs = {k: prediction.get(k) if hasattr(prediction, "get") else getattr(prediction, k, None)
                   for k in self.output_fields}
        ex = TaskExample(example.ia_id, {k: example[k] for k in example.inputs().keys()},
                         {}, example.ia_gold, "")
        result = self.score(ex, outputs)
        if trace is not None:  # bootstrapping keeps a demo only if it is right
            return float(result.correct)
        return result.score


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

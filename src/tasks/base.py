"""The Task contract every domain implements: examples from records, a DSPy signature/program, and a metric."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dspy

from src.tasks.example import Score, TaskExample, as_text, normalize_input
from src.tasks.metrics import parse_yes_no

if TYPE_CHECKING:
    from src.registry import Config, TaskSpec
    from src.tasks.sources import Source


def to_dspy(example: TaskExample) -> dspy.Example:
    """The example as DSPy sees it; ia_id / ia_gold ride along outside the signature: adapters ignore them,
    metrics read them."""
    return dspy.Example(**example.inputs, **example.labels, ia_id=example.id,
                        ia_gold=example.gold).with_inputs(*example.inputs)


class Task:
    """Base class: a task = data (records -> examples) + solver (signature/program) + scorer (metric)."""

    signature: type[dspy.Signature]
    chain_of_thought: bool = False
    binary: bool = True  # primary score is 0/1 (Wilson intervals, McNemar) rather than continuous
    group_by: str | None = None  # what examples' `group` keys name (e.g. "passage"); None: every row is its own
    correct_threshold: float = 1.0  # continuous metrics: score at or above this counts as correct
    # Generation bound = the longest train gold answer x this margin (src.tasks.bounds); None: no bound
    answer_margin: float | None = 2.0

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

    stratified_by: str = ""  # what strata() names, for provenance notes

    def strata(self, examples: list[TaskExample]) -> list[str] | None:
        """Each example's class for a stratified derived split, or None (built-in tasks: plain seeded splits, as
        their published results were made)."""
        return None

    def split_source(self, source: Source, ref: Any) -> Source:
        """The source one split is read from; a domain may substitute another (HumanEval's package copy)."""
        return source

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

    @property
    def mean_aggregate(self) -> bool:
        """Is the corpus score the plain mean of per-example scores? (Statistics may then resample scores.)"""
        return type(self).aggregate is Task.aggregate

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


class YesNoTask(Task):
    """Shared by every yes/no domain: the gold is a bool, the answer any yes-like or no-like text."""

    def score(self, example: TaskExample, outputs: dict[str, Any]) -> Score:
        text = as_text(outputs.get("answer"))
        value = parse_yes_no(outputs.get("answer"))
        ok = value is not None and value == bool(example.gold)
        extras = {} if value is not None else {"answer_unrecognised": 1.0}
        return Score(float(ok), ok, text, extras)

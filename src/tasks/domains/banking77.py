"""Banking77 (task key "classification"): map a customer's banking query to one of 77 intent labels, scored by accuracy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import dspy

from src.errors import UserError
from src.tasks.base import Task
from src.tasks.example import Score, TaskExample, as_text
from src.tasks.metrics import match_label

if TYPE_CHECKING:
    from src.tasks.sources import Source

_INSTRUCTIONS = ("Classify the online-banking customer's message into exactly one intent. Answer with one label "
                 "copied exactly from the allowed list (lower case, words joined by underscores).")

_signatures: dict[tuple[str, ...], type[dspy.Signature]] = {}


def intent_signature(labels: list[str]) -> type[dspy.Signature]:
    """A signature whose output is a Literal over the labels: adapters list them, schema decoding enforces them."""
    key = tuple(labels)
    if key not in _signatures:
        _signatures[key] = dspy.make_signature(
            {
                "text": (str, dspy.InputField(desc="the customer's message")),
                "intent": (Literal[key], dspy.OutputField(desc="the intent label, exactly as written in the list")),
            },
            _INSTRUCTIONS,
            signature_name="ClassifyIntent",
        )
    return _signatures[key]


class ClassificationTask(Task):
    labels: list[str] | None = None

    @property
    def signature(self) -> type[dspy.Signature]:  # type: ignore[override]
        # The label list is a fact of the data source, so the signature exists only once prepare() has read it.
        if not self.labels:
            raise UserError(f"task '{self.key}': load its data before building the program (label names unknown)")
        return intent_signature(self.labels)

    def prepare(self, source: Source) -> None:
        names = source.class_names(self.spec.eval, "label") or source.class_names(self.spec.train, "label")
        if not names:
            raise UserError(f"task '{self.key}': {source.describe()} declares no ClassLabel names for column 'label' "
                            f"of {self.spec.eval.folder}")
        self.labels = list(names)

    def example_from_record(self, record: dict[str, Any], index: int, split: str) -> TaskExample:
        assert self.labels is not None, "prepare() runs before examples are built"
        gold = self.labels[int(record["label"])]
        return TaskExample(
            id=self.record_id(record, index, split),
            inputs={"text": record["text"]},
            labels={"intent": gold},
            gold=gold,
            gold_text=gold,
        )

    def score(self, example: TaskExample, outputs: dict[str, Any]) -> Score:
        text = as_text(outputs.get("intent"))
        # Match against the gold first so a correct answer counts even before prepare() (e.g. optimizer metric).
        named = match_label(text, [example.gold] + (self.labels or []))
        ok = named == example.gold
        extras = {} if named is not None else {"answer_unrecognised": 1.0}
        return Score(float(ok), ok, text, extras)


TASK = ClassificationTask

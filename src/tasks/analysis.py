"""Analysis domain (BoolQ): yes/no questions about a passage, scored by accuracy."""

from __future__ import annotations

from typing import Any

import dspy

from src.tasks.base import Score, Task, TaskExample, as_text
from src.tasks.metrics import parse_yes_no, yes_no_text


class AnswerFromPassage(dspy.Signature):
    """Read the passage and answer the question with yes or no."""

    passage: str = dspy.InputField()
    question: str = dspy.InputField()
    answer: str = dspy.OutputField(desc='exactly "yes" or "no"')


class YesNoTask(Task):
    """Shared by every yes/no domain: the gold is a bool, the answer any yes-like or no-like text."""

    def score(self, example: TaskExample, outputs: dict[str, Any]) -> Score:
        text = as_text(outputs.get("answer"))
        value = parse_yes_no(outputs.get("answer"))
        ok = value is not None and value == bool(example.gold)
        extras = {} if value is not None else {"answer_unrecognised": 1.0}
        return Score(float(ok), ok, text, extras)


class AnalysisTask(YesNoTask):
    signature = AnswerFromPassage

    def example_from_record(self, record: dict[str, Any], index: int, split: str) -> TaskExample:
        gold = bool(record["answer"])
        return TaskExample(
            id=self.record_id(record, index, split),
            inputs={"passage": record["passage"], "question": record["question"]},
            labels={"answer": yes_no_text(gold)},
            gold=gold,
            gold_text=yes_no_text(gold),
        )


TASK = AnalysisTask

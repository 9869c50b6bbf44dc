"""BoolQ (task key "analysis"): yes/no questions about a passage, scored by accuracy."""

from __future__ import annotations

from typing import Any

import dspy

from src.tasks.base import YesNoTask
from src.tasks.example import TaskExample, source_key
from src.tasks.metrics import yes_no_text


class AnswerFromPassage(dspy.Signature):
    """Read the passage and answer the question with yes or no."""

    passage: str = dspy.InputField()
    question: str = dspy.InputField()
    answer: str = dspy.OutputField(desc='exactly "yes" or "no"')


class AnalysisTask(YesNoTask):
    signature = AnswerFromPassage
    group_by = "passage"  # several questions per passage: a derived split keeps a passage on one side

    def example_from_record(self, record: dict[str, Any], index: int, split: str) -> TaskExample:
        gold = bool(record["answer"])
        return TaskExample(
            id=self.record_id(record, index, split),
            inputs={"passage": record["passage"], "question": record["question"]},
            labels={"answer": yes_no_text(gold)},
            gold=gold,
            gold_text=yes_no_text(gold),
            group=(source_key("passage", record["passage"]),),
        )


TASK = AnalysisTask

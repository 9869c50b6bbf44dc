"""StrategyQA (task key "agentic"): yes/no questions that need an implicit multi-step plan, solved with chain of thought."""

from __future__ import annotations

from typing import Any

import dspy

from src.tasks.base import YesNoTask
from src.tasks.example import TaskExample
from src.tasks.metrics import yes_no_text


class AnswerStrategyQuestion(dspy.Signature):
    """Answer the yes/no question from your own knowledge. Work out which facts the question implicitly depends
    on, recall each one, and combine them step by step before deciding."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField(desc='exactly "yes" or "no"')


class AgenticTask(YesNoTask):
    # Closed-book as in the original study: the dataset's facts and decomposition are never shown to the model;
    # the facts only serve as the worked reasoning of labelled demos.
    signature = AnswerStrategyQuestion
    chain_of_thought = True
    group_by = "term"  # questions written about the same term share facts: one side of the split per term

    def example_from_record(self, record: dict[str, Any], index: int, split: str) -> TaskExample:
        gold = bool(record["answer"])
        facts = " ".join(f.strip() for f in record.get("facts") or [] if f and f.strip())
        return TaskExample(
            id=self.record_id(record, index, split, "qid"),
            inputs={"question": record["question"]},
            labels={"reasoning": facts, "answer": yes_no_text(gold)},
            gold=gold,
            gold_text=yes_no_text(gold),
            group=(f"term:{record['term']}",) if record.get("term") else (),
        )


TASK = AgenticTask

"""HotpotQA, closed-book (task key "qa"): answer a multi-hop question from memory, scored by official HotpotQA EM/F1."""

from __future__ import annotations

from typing import Any

import dspy

from src.tasks.base import Task
from src.tasks.example import Score, TaskExample, as_text
from src.tasks.metrics import exact_match, hotpot_f1


class AnswerMultiHopQuestion(dspy.Signature):
    """Answer the question from your own knowledge. It may need two facts combined (e.g. a person, then their
    birthplace). Give only the answer itself, as short as possible: a name, date, number, short phrase, or
    yes/no - no explanation and no full sentence."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField(desc="the answer only, usually 1-5 words (or yes / no)")


def supporting_titles(record: dict[str, Any]) -> tuple[str, ...]:
    """The Wikipedia titles of the record's supporting facts, as group keys."""
    facts = record.get("supporting_facts") or {}
    titles = facts.get("title", []) if isinstance(facts, dict) else [f[0] for f in facts if f]
    return tuple(sorted({f"title:{t}" for t in titles}))


class QATask(Task):
    # Closed-book as in the original study: the distractor paragraphs are not given to the model.
    signature = AnswerMultiHopQuestion
    group_by = "supporting titles"  # questions that share a supporting article stay on one side of a split

    def example_from_record(self, record: dict[str, Any], index: int, split: str) -> TaskExample:
        gold = record["answer"]
        return TaskExample(
            id=self.record_id(record, index, split, "id"),
            inputs={"question": record["question"]},
            labels={"answer": gold},
            gold=gold,
            gold_text=gold,
            group=supporting_titles(record),
        )

    def score(self, example: TaskExample, outputs: dict[str, Any]) -> Score:
        text = as_text(outputs.get("answer"))
        em = exact_match(text, example.gold)
        return Score(em, em == 1.0, text, {"f1": round(hotpot_f1(text, example.gold), 6)})


TASK = QATask

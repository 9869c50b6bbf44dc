"""SQuAD v1.1 with its context (task key "rag"): answer a question from a given passage, scored by official SQuAD F1 (EM, faithfulness)."""

from __future__ import annotations

from typing import Any

import dspy

from src.tasks.base import Task
from src.tasks.example import Score, TaskExample, as_text
from src.tasks.metrics import exact_match, max_over_golds, normalize_answer, token_f1


class AnswerFromContext(dspy.Signature):
    """Answer the question using only the context. Reply with the shortest span of the context that answers it,
    copied word for word - no full sentence, no explanation."""

    context: str = dspy.InputField()
    question: str = dspy.InputField()
    answer: str = dspy.OutputField(desc="a short span copied from the context")


def faithfulness(answer: str, context: str) -> float:
    """Share of the answer's normalised tokens that occur in the normalised context.

    An empty answer scores 0.0: it grounds nothing, and scoring it 1.0 would reward abstaining.
    """
    tokens = normalize_answer(answer).split()
    if not tokens:
        return 0.0
    present = set(normalize_answer(context).split())
    return sum(t in present for t in tokens) / len(tokens)


class RagTask(Task):
    """Primary = SQuAD F1 (max over the gold answers); correct = exact match with one of them."""

    signature = AnswerFromContext
    binary = False

    def example_from_record(self, record: dict[str, Any], index: int, split: str) -> TaskExample:
        # Every gold answer is kept, even one that normalises to nothing: the official v1.1 script scores against
        # all of them (an empty reply then matches it exactly). Demos show the first gold that says something.
        golds = list(dict.fromkeys(record["answers"]["text"]))
        shown = next((g for g in golds if normalize_answer(g)), golds[0] if golds else "")
        return TaskExample(
            id=self.record_id(record, index, split, "id"),
            inputs={"context": record["context"], "question": record["question"]},
            labels={"answer": shown},
            gold=golds,
            gold_text=" | ".join(golds),
        )

    def score(self, example: TaskExample, outputs: dict[str, Any]) -> Score:
        text = as_text(outputs.get("answer"))
        golds = list(example.gold)
        f1 = max_over_golds(token_f1, text, golds)
        em = max_over_golds(exact_match, text, golds)
        context = str(example.inputs.get("context", ""))
        extras = {"em": em, "faithfulness": round(faithfulness(text, context), 6)}
        if not normalize_answer(text):
            extras["answer_empty"] = 1.0
        return Score(f1, em == 1.0, text, extras)


TASK = RagTask

"""XSum (task key "synthesis"): summarise a news article in one sentence, scored by ROUGE-L F1 with stemming."""

from __future__ import annotations

from typing import Any

import dspy

from src.tasks.base import Task
from src.tasks.example import Score, TaskExample, as_text, source_key
from src.tasks.metrics import rouge


class SummarizeArticle(dspy.Signature):
    """Write a one-sentence summary of the news article, in the style of a BBC article's introductory sentence:
    say what happened, to whom, in about 20-25 words. Do not copy the first sentence; do not add facts."""

    document: str = dspy.InputField(desc="the news article")
    summary: str = dspy.OutputField(desc="a single sentence")


class SynthesisTask(Task):
    """Score = ROUGE-L F1 (continuous, never thresholded); rouge1/rouge2 ride along in extras.

    `correct_threshold` only fills the is_correct column: 0.3 ROUGE-L is roughly where an XSum summary shares
    its core phrase with the reference (strong systems average 0.3-0.4); statistics use the score itself.
    """

    signature = SummarizeArticle
    binary = False
    correct_threshold = 0.3
    group_by = "document"  # the same article never sits on both sides of a derived split

    def example_from_record(self, record: dict[str, Any], index: int, split: str) -> TaskExample:
        gold = record["summary"]
        return TaskExample(
            id=self.record_id(record, index, split, "id"),
            inputs={"document": record["document"]},
            labels={"summary": gold},
            gold=gold,
            gold_text=gold,
            group=(source_key("document", record["document"]),),
        )

    def score(self, example: TaskExample, outputs: dict[str, Any]) -> Score:
        text = as_text(outputs.get("summary"))
        scores = rouge(text, example.gold)
        value = scores["rougeL"]
        extras = {"rouge1": round(scores["rouge1"], 6), "rouge2": round(scores["rouge2"], 6)}
        return Score(value, value >= self.correct_threshold, text, extras)


TASK = SynthesisTask

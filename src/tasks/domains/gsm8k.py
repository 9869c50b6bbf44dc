"""GSM8K (task key "math"): word problems solved with chain of thought, scored by exact numeric (decimal) match."""

from __future__ import annotations

import re
from typing import Any

import dspy

from src.tasks.base import Task
from src.tasks.example import Score, TaskExample, as_text
from src.tasks.metrics import numbers_equal, parse_exact_number


class SolveWordProblem(dspy.Signature):
    """Solve the grade-school math word problem step by step, then give the final answer as a single number."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField(desc="the final numeric answer only (digits, no units), e.g. 42")


_CALC = re.compile(r"<<[^>]*>>")


def gold_number(answer_field: str) -> str:
    """GSM8K's gold answer: the text after '####', thousands separators removed."""
    return answer_field.split("####")[-1].strip().replace(",", "")


class MathTask(Task):
    signature = SolveWordProblem
    chain_of_thought = True

    def example_from_record(self, record: dict[str, Any], index: int, split: str) -> TaskExample:
        gold = gold_number(record["answer"])
        rationale = _CALC.sub("", record["answer"].split("####")[0]).strip()
        return TaskExample(
            id=self.record_id(record, index, split),
            inputs={"question": record["question"]},
            labels={"reasoning": rationale, "answer": gold},
            gold=gold,
            gold_text=gold,
        )

    def score(self, example: TaskExample, outputs: dict[str, Any]) -> Score:
        text = as_text(outputs.get("answer"))
        value = parse_exact_number(text)
        ok = numbers_equal(value, parse_exact_number(example.gold))
        extras = {} if value is not None else {"answer_unrecognised": 1.0}
        return Score(float(ok), ok, text, extras)


TASK = MathTask

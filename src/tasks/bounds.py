"""Generation bounds per task: how many output tokens a task's answers need, derived from the gold answers of its
train split with a margin, so a small local model cannot spend 500 tokens on what should be one sentence.

The bound is computed from characters, not from one model's tokenizer (no tokenizer is shared by every backend):
a gold answer of C characters is taken to need at most C / CHARS_PER_TOKEN tokens, which over-counts every BPE
tokenizer of the study on English, numbers, JSON and code (they average 3.5-4.5 characters per token). That estimate
of the longest train answer is multiplied by the task's margin and the adapter's framing is added on top.
tests/test_generation_bounds.py checks against the embedded model's own tokenizer that every gold answer of every
split of every task in the offline datasets fits; benchmarks/bench_bounds.py does it exhaustively.

A task whose program reasons before it answers (chain of thought) is bounded only when its gold carries a
rationale (GSM8K's worked solution, StrategyQA's facts), with the wider REASONING_MARGIN; a program that reasons on a
task whose bound was derived without a rationale (the cot_zero_shot arm on XSum) runs under the model's own cap.
Which models a bound is applied to is the backend's decision (src.backends.session), not the task's.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dspy

    from src.tasks.base import Task
    from src.tasks.example import TaskExample

CHARS_PER_TOKEN = 3.0  # a floor under the tokenizers' real average (3.5-4.5): over-counts answers' tokens
FIELD_OVERHEAD = 12  # per output field: its framing ("[[ ## summary ## ]]" + newlines, or a JSON key and quotes)
REPLY_OVERHEAD = 16  # the reply's own framing ("[[ ## completed ## ]]", braces, end of turn)
REASONING_MARGIN = 3.0  # a model's chain of thought is wordier than a dataset's terse rationale
MIN_BOUND = 48  # a tiny-answer task (yes/no) still leaves room for a sentence around the answer


def answer_text(value: Any) -> str:
    """A gold value as the model would write it: text as is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def estimated_tokens(text: str) -> int:
    """An over-estimate of `text`'s tokens in any of the study's tokenizers."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def answer_tokens(labels: dict[str, Any]) -> int:
    """Estimated tokens of an example's gold answer (every output field), framing excluded."""
    return sum(estimated_tokens(answer_text(v)) for v in labels.values())


def derive_bound(task: Task, train: list[TaskExample]) -> dict[str, Any] | None:
    """The task's generation bound and how it was derived (recorded in every result's data provenance), or None
    when the task reasons before answering or has no train answers to measure."""
    margin = task.answer_margin
    with_reasoning = bool(train) and all(ex.labels.get("reasoning") for ex in train)
    if margin is None or not train or (task.chain_of_thought and not with_reasoning):
        return None
    if with_reasoning:
        margin = max(margin, REASONING_MARGIN)
    fields = len(task.output_fields)
    longest = max(answer_tokens(ex.labels) for ex in train)
    tokens = max(MIN_BOUND, math.ceil(longest * margin) + FIELD_OVERHEAD * fields + REPLY_OVERHEAD)
    return {
        "max_tokens": tokens,
        "basis": f"longest gold answer of {len(train)} train examples",
        "longest_answer_tokens_est": longest,
        "margin": margin,
        "covers_reasoning": with_reasoning,
        "rule": (f"max(ceil(longest x {margin:g}) + {FIELD_OVERHEAD}/field x {fields} + {REPLY_OVERHEAD}, "
                 f"{MIN_BOUND}); tokens estimated as characters / {CHARS_PER_TOKEN:g}"),
    }


def reasons(program: dspy.Module) -> bool:
    """Does any predictor of `program` write a reasoning field before its answer (chain of thought)? Its bound
    cannot come from the gold answers then."""
    return any("reasoning" in p.signature.output_fields for p in program.predictors())


def bound_for(provenance: dict[str, Any], program: dspy.Module) -> int | None:
    """The generation bound a unit of this program on this data runs under (None: the model's own cap)."""
    bound = provenance.get("generation_bound")
    if not bound or (reasons(program) and not bound.get("covers_reasoning")):
        return None
    return int(bound["max_tokens"])

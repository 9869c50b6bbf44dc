"""One evaluated example as a CSV row (Record), the columns of a result CSV, and a record back as a metric Score."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from src.tasks.example import Score


@dataclass
class Record:
    """One evaluated example; a CSV row. Parse failures and backend errors are flagged apart from wrong answers."""

    experiment_id: str
    model: str
    task: str
    phase: str
    example_id: str
    prediction: str
    ground_truth: str
    score: float
    is_correct: int
    parse_failure: int = 0
    error: str = ""
    latency_ms: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0  # estimated from the removed <think> text (4 chars/token); included in output_tokens
    lm_calls: int = 0
    cost_usd: float = 0.0
    cache_hit: int = 0
    extras: str = "{}"  # JSON: secondary metrics and per-example counts (e.g. NER tp/fp/fn)
    timestamp: str = ""
    retries: int = 0  # requests re-sent after transient backend failures (src.backends.retry); last, so older
    #                   CSVs without the column still read and positional rows keep their meaning
    repeat: int = 0  # which attempt at the example (--repeats k: 0..k-1); 0 in every file made with k = 1 or before
    inputs: str = ""  # JSON: the example's input fields as the model saw them (each cut at INPUT_CHARS), for the
    #                   report's example browser; appended after `retries` and `repeat` for the same reason

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        kwargs = {}
        for f in fields(cls):
            if f.name not in d:
                continue
            value = d[f.name]
            if f.type in ("int",) and value not in (None, ""):
                value = int(float(value))
            elif f.type in ("float",) and value not in (None, ""):
                value = float(value)
            elif f.type == "str" and value is None:
                value = ""
            kwargs[f.name] = value
        return cls(**kwargs)

    @property
    def key(self) -> str:
        return record_key(self.example_id, self.repeat)

    @property
    def extras_dict(self) -> dict[str, Any]:
        try:
            return json.loads(self.extras or "{}")
        except ValueError:
            return {}


CSV_COLUMNS = [f.name for f in fields(Record)]
INPUT_CHARS = 4000  # per input field in a record: enough to read an example, bounded for 10,000-example studies


def inputs_json(inputs: dict[str, Any]) -> str:
    """An example's inputs as a record keeps them: JSON, each field's text cut at INPUT_CHARS."""
    def cut(value: Any) -> Any:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        return text if len(text) <= INPUT_CHARS else text[:INPUT_CHARS] + f" [... {len(text) - INPUT_CHARS} more]"
    return json.dumps({k: cut(v) for k, v in inputs.items()}, ensure_ascii=False)


def record_key(example_id: str, repeat: int = 0) -> str:
    """One attempt's key in a journal: the example id for the first attempt (so files made before repeats existed
    keep their keys), `id#r` for attempt r > 0."""
    return example_id if not repeat else f"{example_id}#{repeat}"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def record_score(rec: Record) -> Score:
    """A recorded example as the metric's Score again (what statistics and corpus aggregates consume)."""
    return Score(rec.score, bool(rec.is_correct), rec.prediction, rec.extras_dict)

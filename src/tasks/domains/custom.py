"""Custom tasks: a generic task declared in tasks.json (its fields, gold column and one of six shared metrics), over
a dataset in the HF layout or the user's own CSV/JSONL/Parquet files (src.tasks.files)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import dspy

from src.errors import UserError
from src.registry.specs import FILE_HUB_ID
from src.tasks.base import Task
from src.tasks.example import Score, TaskExample, as_text
from src.tasks.files import FileSource
from src.tasks.metrics import (
    exact_match,
    match_label,
    max_over_golds,
    numbers_equal,
    parse_exact_number,
    parse_yes_no,
    rouge,
    token_f1,
    yes_no_text,
)

if TYPE_CHECKING:
    from src.registry import Config, TaskSpec
    from src.tasks.sources import Source

# What the output field asks for, per metric (the model sees it as the field's description).
_OUTPUT_DESC = {
    "exact_match": "the answer only, as short as possible",
    "numeric": "the final numeric answer only (digits, no units)",
    "yes_no": 'exactly "yes" or "no"',
    "token_f1": "the answer only, as short as possible",
    "rouge_l": "the text",
    "label": "one label, exactly as written in the allowed list",
}
ROUGE_CORRECT_THRESHOLD = 0.3  # as the synthesis task: fills is_correct only


def lookup(record: dict[str, Any], path: str) -> Any:
    """A column, or a dotted path into nested columns ("answers.text")."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(path)
        value = value[part]
    return value


class CustomTask(Task):
    """Options (from tasks.json via src.registry): inputs, output, gold, metric, instructions, labels, cot, id_field,
    group_field (a column naming each record's source; rows sharing one never straddle a derived split).

    gold may name a list column (any element counts as right, max over golds) or a ClassLabel column (its
    names are read from the source, or from `labels` by index).
    """

    def __init__(self, spec: TaskSpec, config: Config):
        super().__init__(spec, config)
        opts = spec.options
        self.inputs: list[str] = list(opts["inputs"])
        self.output: str = opts["output"]
        self.gold_path: str = opts["gold"]
        self.metric_name: str = opts["metric"]
        self.labels: list[str] | None = list(opts["labels"]) if opts.get("labels") else None
        self.gold_names: list[str] | None = None
        self.chain_of_thought = bool(opts.get("cot"))
        self.group_field: str | None = opts.get("group_field")
        self.group_by = self.group_field
        self.binary = self.metric_name not in ("token_f1", "rouge_l")
        if self.metric_name == "rouge_l":
            self.correct_threshold = ROUGE_CORRECT_THRESHOLD
        instructions = (opts.get("instructions") or "").strip() or (
            f"Given the fields {', '.join(f'`{n}`' for n in self.inputs)}, produce the field `{self.output}`.")
        out_type: Any = Literal[tuple(self.labels)] if self.metric_name == "label" and self.labels else str
        fields: dict[str, Any] = {name: (str, dspy.InputField()) for name in self.inputs}
        fields[self.output] = (out_type, dspy.OutputField(desc=_OUTPUT_DESC[self.metric_name]))
        self.signature = dspy.make_signature(fields, instructions, signature_name="CustomTask")
        files: dict[str, str] | None = opts.get("data_files")
        self.file_source: FileSource | None = None
        if files:
            root = Path(opts["data_root"])
            self.file_source = FileSource({split: root / p for split, p in files.items()}, dict(files))
            self.stratified_by = f"gold label ({self.gold_path})"

    def split_source(self, source: Source, ref: Any) -> Source:
        """A task over the user's own files reads them whatever --data says (the mirror and hub hold no copy)."""
        return self.file_source if self.file_source is not None and ref.hub_id == FILE_HUB_ID else source

    def prepare(self, source: Source) -> None:
        column = self.gold_path.split(".")[0]
        self.gold_names = self.split_source(source, self.spec.eval).class_names(self.spec.eval, column)

    def strata(self, examples: list[TaskExample]) -> list[str] | None:
        """A file dataset with labels (label, yes/no metrics) is split stratified by its gold label."""
        if self.file_source is None or self.metric_name not in ("label", "yes_no"):
            return None
        return [as_text(ex.gold if self.metric_name == "yes_no" else ex.gold[0] if ex.gold else "") for ex in examples]

    def _golds(self, record: dict[str, Any]) -> list[Any]:
        try:
            value = lookup(record, self.gold_path)
        except KeyError:
            raise UserError(f"task '{self.key}': records have no gold column '{self.gold_path}' "
                            f"(columns: {', '.join(record)})") from None
        values = value if isinstance(value, list) else [value]
        names = self.gold_names or (self.labels if self.metric_name == "label" else None)
        out = []
        for v in values:
            if names and isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(names):
                v = names[v]  # a ClassLabel id
            out.append(v)
        return out

    def example_from_record(self, record: dict[str, Any], index: int, split: str) -> TaskExample:
        missing = [n for n in self.inputs if n not in record]
        if missing:
            raise UserError(f"task '{self.key}': records have no input column(s) {', '.join(missing)} "
                            f"(columns: {', '.join(record)})")
        golds = self._golds(record)
        if self.metric_name == "yes_no":
            parsed = parse_yes_no(golds[0]) if golds else None
            if parsed is None:
                raise UserError(f"task '{self.key}': gold {golds!r} of example {index} is not a yes/no value")
            gold: Any = parsed
            shown = yes_no_text(parsed)
        else:
            gold = [str(g) for g in golds]
            shown = gold[0] if gold else ""
        group: tuple[str, ...] = ()
        if self.group_field:
            try:
                source = lookup(record, self.group_field)
            except KeyError:
                raise UserError(f"task '{self.key}': records have no group column '{self.group_field}' "
                                f"(columns: {', '.join(record)})") from None
            values = source if isinstance(source, list) else [source]
            group = tuple(f"{self.group_field}:{as_text(v)}" for v in values if v not in (None, ""))
        return TaskExample(
            id=self.record_id(record, index, split, self.spec.options.get("id_field")),
            inputs={n: as_text(record[n]) for n in self.inputs},
            labels={self.output: shown},
            gold=gold,
            gold_text=shown if self.metric_name == "yes_no" else " | ".join(gold),
            group=group,
        )

    def score(self, example: TaskExample, outputs: dict[str, Any]) -> Score:
        raw = outputs.get(self.output)
        text = as_text(raw)
        extras: dict[str, float] = {}
        m = self.metric_name
        if m == "yes_no":
            value = parse_yes_no(raw)
            score = float(value is not None and value == bool(example.gold))
            if value is None:
                extras["answer_unrecognised"] = 1.0
        elif m == "numeric":
            value = parse_exact_number(text)
            score = float(any(numbers_equal(value, parse_exact_number(g)) for g in example.gold))
            if value is None:
                extras["answer_unrecognised"] = 1.0
        elif m == "label":
            named = match_label(text, list(example.gold) + (self.labels or []))
            score = float(named is not None and named in example.gold)
            if named is None:
                extras["answer_unrecognised"] = 1.0
        elif m == "exact_match":
            score = max_over_golds(exact_match, text, example.gold)
        elif m == "token_f1":
            score = max_over_golds(token_f1, text, example.gold)
            extras["em"] = max_over_golds(exact_match, text, example.gold)
        else:  # rouge_l
            best = max((rouge(text, g) for g in example.gold), key=lambda s: s["rougeL"],
                       default={"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0})
            score = best["rougeL"]
            extras.update(rouge1=round(best["rouge1"], 6), rouge2=round(best["rouge2"], 6))
        correct = score >= self.correct_threshold if not self.binary else score == 1.0
        return Score(score, correct, text, extras)


TASK = CustomTask

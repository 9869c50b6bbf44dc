"""CoNLL-2003 NER (task key "extraction"): list the person/organisation/location/misc names in a sentence; entity F1."""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

import dspy
from pydantic_core import core_schema

from src.errors import UserError
from src.tasks.base import Task
from src.tasks.example import Score, TaskExample

if TYPE_CHECKING:
    from src.tasks.sources import Source

# Output field -> CoNLL entity type.
FIELD_TYPES = {"persons": "PER", "organizations": "ORG", "locations": "LOC", "miscellaneous": "MISC"}
_NONE_WORDS = {"", "none", "null", "n/a", "na", "nil", "-", "no entities", "nothing", "empty"}
_FENCE = re.compile(r"^```[\w-]*\s*|\s*```$")


def coerce_entities(value: Any) -> list[str]:
    """Entity strings from whatever a model produced: a list, JSON or broken JSON, a Python literal, or plain
    text with one name per line / comma-separated. Never raises: unusable input yields []."""
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, (list, tuple, set)):
        out: list[str] = []
        for item in value:
            if isinstance(item, (list, tuple, set, dict)):
                out.extend(coerce_entities(item))
            elif item is not None and str(item).strip():
                out.append(str(item).strip())
        return out
    if isinstance(value, dict):  # {"text": ...} objects or a type->names mapping: keep the names
        named = [value[k] for k in ("text", "name", "entity") if k in value]
        return coerce_entities(named or list(value.values()))
    text = _FENCE.sub("", str(value).strip()).strip()
    if text.lower().strip(".") in _NONE_WORDS:
        return []
    if text[:1] in "[{\"'":
        parsed = _parse_literal(text)
        if isinstance(parsed, str):
            return [parsed.strip()] if parsed.strip() else []
        if parsed is not None:
            return coerce_entities(parsed)
    parts = re.split(r"\s*(?:\n|;|,(?!\d))\s*", text)
    return [p.strip(" \t-*•\"'`[]") for p in parts if p.strip(" \t-*•\"'`[]")]


def _parse_literal(text: str) -> Any:
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    try:
        import json_repair  # a DSPy dependency: mends unclosed brackets and stray quotes

        repaired = json_repair.loads(text)
        return repaired if repaired != "" else None
    except Exception:  # noqa: BLE001 - best effort only
        return None


class EntityList(list):
    """list[str] in prompts and JSON schemas, but validation also accepts the messy forms coerce_entities reads,
    so one malformed field does not turn the whole prediction into a parse failure under ChatAdapter."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(coerce_entities, handler(list[str]))


class ExtractEntities(dspy.Signature):
    """Extract the named entities from the sentence (CoNLL-2003 guidelines). Copy each name exactly as it is
    written in the sentence; list a name twice if it occurs twice; use [] for a type with no names.
    persons: people (including fictional). organizations: companies, institutions, governments, political
    parties, sports teams, news agencies. locations: countries, cities, regions, rivers, mountains, venues.
    miscellaneous: nationalities and other adjectives from names (e.g. "German"), events, languages, religions,
    titles of works and other proper names that are none of the above."""

    sentence: str = dspy.InputField()
    persons: EntityList = dspy.OutputField(desc="JSON list of person names")
    organizations: EntityList = dspy.OutputField(desc="JSON list of organization names")
    locations: EntityList = dspy.OutputField(desc="JSON list of location names")
    miscellaneous: EntityList = dspy.OutputField(desc="JSON list of other names (nationalities, events, ...)")


def spans_from_tags(tokens: list[str], tags: list[str]) -> list[tuple[str, str]]:
    """(type, text) for every entity in IOB2 tags, tokens joined by single spaces. An I- tag that does not
    continue an entity of its type starts one (IOB1 habits), as conlleval does."""
    spans: list[tuple[str, str]] = []
    current: list[str] = []
    current_type = None
    for token, tag in zip(tokens, tags):
        prefix, _, kind = (tag or "O").partition("-")
        if prefix == "O" or not kind:
            if current:
                spans.append((current_type, " ".join(current)))
            current, current_type = [], None
            continue
        if prefix == "B" or kind != current_type:
            if current:
                spans.append((current_type, " ".join(current)))
            current, current_type = [token], kind
        else:
            current.append(token)
    if current:
        spans.append((current_type, " ".join(current)))
    return spans


def entity_key(text: str) -> tuple[str, ...]:
    """The strict match key of an entity: its tokens (CoNLL spans are token sequences, so only the whitespace
    between tokens is free). Case and punctuation count, as in seqeval's exact (span, type) matching."""
    return tuple(str(text).split())


def lenient_key(text: str) -> tuple[str, ...]:
    """A LENIENT key (secondary metric only): case-insensitive, trailing , ; : " ' stripped and blind to the
    spaces CoNLL's tokenisation puts around punctuation ("Lincoln 's" == "lincoln's")."""
    text = " ".join(str(text).split()).casefold().strip(" \"'`,;:")
    return (re.sub(r"\s*([^\w\s])\s*", r"\1", text),) if text else ()


def entity_counts(by_type: dict[str, list[str]], key=entity_key) -> Counter:
    """Multiset of (type, key) over every listed entity; entries whose key is empty are not entities."""
    return Counter((kind, key(t)) for kind, texts in by_type.items() for t in texts if key(t))


def match_counts(predicted: dict[str, list[str]], gold: dict[str, list[str]], key=entity_key) -> tuple[int, int, int]:
    """(tp, fp, fn) of predicted against gold entities, matched on (type, key)."""
    pred, ref = entity_counts(predicted, key), entity_counts(gold, key)
    tp = sum((pred & ref).values())
    return tp, sum(pred.values()) - tp, sum(ref.values()) - tp


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall, F1; nothing expected and nothing predicted is a perfect 1.0 on all three."""
    precision = tp / (tp + fp) if tp + fp else (1.0 if fn == 0 else 0.0)
    recall = tp / (tp + fn) if tp + fn else (1.0 if fp == 0 else 0.0)
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    return precision, recall, f1


class ExtractionTask(Task):
    """Per-example score = strict entity F1 (exact span tokens and type, seqeval's matching on CoNLL); corpus
    score = micro-F1 over the summed tp/fp/fn (aggregate), the number seqeval reports.

    correct = the example's F1 is 1.0 (every entity found with the right type, nothing extra). A LENIENT variant
    (case- and punctuation-insensitive, see lenient_key) rides along in extras as lenient_tp/fp/fn and
    lenient_f1; it is never the primary metric.
    """

    signature = ExtractEntities
    binary = False
    tag_names: list[str] | None = None

    def prepare(self, source: Source) -> None:
        names = source.class_names(self.spec.eval, "ner_tags") or source.class_names(self.spec.train, "ner_tags")
        if not names:
            raise UserError(f"task '{self.key}': {source.describe()} declares no ClassLabel names for 'ner_tags' "
                            f"of {self.spec.eval.folder}")
        self.tag_names = list(names)

    def example_from_record(self, record: dict[str, Any], index: int, split: str) -> TaskExample:
        assert self.tag_names is not None, "prepare() runs before examples are built"
        tokens = record["tokens"]
        tags = [self.tag_names[int(t)] for t in record["ner_tags"]]
        gold: dict[str, list[str]] = {kind: [] for kind in FIELD_TYPES.values()}
        for kind, text in spans_from_tags(tokens, tags):
            gold.setdefault(kind, []).append(text)
        by_field = {field: gold[kind] for field, kind in FIELD_TYPES.items()}
        # CoNLL's ids restart in every split, so the split name keeps them unique.
        own_id = f"{split}-{record['id']}" if record.get("id") not in (None, "") else None
        return TaskExample(
            id=own_id or self.record_id(record, index, split),
            inputs={"sentence": " ".join(tokens)},
            labels=by_field,
            gold=gold,
            gold_text=json.dumps(gold, ensure_ascii=False),
        )

    def score(self, example: TaskExample, outputs: dict[str, Any]) -> Score:
        predicted = {kind: coerce_entities(outputs.get(field)) for field, kind in FIELD_TYPES.items()}
        tp, fp, fn = match_counts(predicted, example.gold)
        precision, recall, f1 = prf(tp, fp, fn)
        ltp, lfp, lfn = match_counts(predicted, example.gold, lenient_key)
        extras = {"tp": float(tp), "fp": float(fp), "fn": float(fn), "precision": round(precision, 6),
                  "recall": round(recall, 6), "lenient_tp": float(ltp), "lenient_fp": float(lfp),
                  "lenient_fn": float(lfn), "lenient_f1": round(prf(ltp, lfp, lfn)[2], 6)}
        return Score(f1, f1 == 1.0, json.dumps(predicted, ensure_ascii=False), extras)

    def aggregate(self, scores: list[Score]) -> float:
        """Corpus micro-F1 from the summed counts (how CoNLL results are reported), not the mean per-example F1.

        A Score without counts is a prediction that never reached score() (the engine records parse failures
        and backend errors as bare 0.0 scores), so its gold entities are unknown here. Leaving it out would
        inflate F1 (all-failed units would score 1.0); instead each one counts as missing the mean number of
        gold entities of the counted examples. With no counted example at all the result is 0.0.
        """
        if not scores:
            return float("nan")
        counted = [s for s in scores if "tp" in s.extras]
        if not counted:
            return 0.0
        tp = sum(s.extras["tp"] for s in counted)
        fp = sum(s.extras["fp"] for s in counted)
        fn = sum(s.extras["fn"] for s in counted)
        missing = len(scores) - len(counted)
        fn += missing * (tp + fn) / len(counted)
        return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


TASK = ExtractionTask

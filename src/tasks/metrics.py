"""Answer extraction and scoring shared by task domains: SQuAD/HotpotQA rules, numbers, yes/no, labels, ROUGE."""

from __future__ import annotations

import re
import string
import threading
from collections import Counter
from fractions import Fraction

# ---- SQuAD v1.1 official normalisation, EM and F1 ------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (SQuAD v1.1 evaluate script)."""
    s = (s or "").lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def max_over_golds(fn, prediction: str, golds: list[str]) -> float:
    return max((fn(prediction, g) for g in golds), default=0.0)


def hotpot_f1(prediction: str, gold: str) -> float:
    """HotpotQA's official F1: yes/no/noanswer only match themselves exactly (hotpot_evaluate_v1.py)."""
    norm_pred, norm_gold = normalize_answer(prediction), normalize_answer(gold)
    special = ("yes", "no", "noanswer")
    if (norm_pred in special or norm_gold in special) and norm_pred != norm_gold:
        return 0.0
    return token_f1(prediction, gold)


# ---- numbers ---------------------------------------------------------------------------------------

# A number with optional sign, thousands separators (only in groups of three) and decimals, or a fraction.
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?")


def parse_number(text: str) -> float | None:
    """The answer's number: the whole answer if it is one ("$1,200.", "18 dollars"), else the last number in it."""
    if text is None:
        return None
    text = str(text).strip()
    if not text:
        return None
    matches = _NUMBER.findall(text.replace("\u2212", "-"))
    if not matches:
        return None
    # A final answer line like "#### 18" or "answer: 18" wins over numbers in the reasoning.
    tail = re.split(r"####|answer\s*(?:is|:)", text, flags=re.IGNORECASE)[-1]
    tail_matches = _NUMBER.findall(tail.replace("\u2212", "-"))
    raw = (tail_matches or matches)[-1]
    raw = raw.replace(",", "").replace(" ", "")
    try:
        return float(Fraction(raw)) if "/" in raw else float(raw)
    except (ValueError, ZeroDivisionError):
        return None


def numbers_equal(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return False
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


# ---- yes / no ------------------------------------------------------------------------------------

_YES = {"yes", "true", "y", "correct", "right", "affirmative"}
_NO = {"no", "false", "n", "incorrect", "wrong", "negative"}


def parse_yes_no(value) -> bool | None:
    """True/False for yes-like/no-like answers ("Yes.", "TRUE", "no, because..."), None when it is neither."""
    if isinstance(value, bool):
        return value
    if value is None:
        return None
    words = re.findall(r"[a-z]+", str(value).lower())
    if not words:
        return None
    if words[0] in _YES:
        return True
    if words[0] in _NO:
        return False
    found = {w for w in words[:8]} & (_YES | _NO)
    if found and found <= _YES:
        return True
    if found and found <= _NO:
        return False
    return None


def yes_no_text(value: bool) -> str:
    return "yes" if value else "no"


# ---- class labels ----------------------------------------------------------------------------------

_LABEL_SEP = re.compile(r"[\s_\-]+")


def normalize_label(value) -> str:
    """Label key insensitive to case, spaces, underscores and hyphens ("Card Arrival" == "card-arrival").

    Surrounding quotes and punctuation go too, so "card_arrival." matches and Banking77's own
    "reverted_card_payment?" is reachable without its question mark.
    """
    text = _LABEL_SEP.sub("_", str(value if value is not None else "").strip().lower())
    return re.sub(r"^[\W_]+|[\W_]+$", "", text)


def match_label(value, labels: list[str]) -> str | None:
    """The canonical label `value` names after normalisation, None if it names none of them."""
    key = normalize_label(value)
    if not key:
        return None
    for label in labels:
        if normalize_label(label) == key:
            return label
    return None


# ---- ROUGE -----------------------------------------------------------------------------------------

_rouge_lock = threading.Lock()
_rouge_scorer = None


def rouge(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/L F-measures with Porter stemming (Google's rouge-score, as XSum results are reported).

    One scorer instance serves every thread; the lock keeps its tokenizer/stemmer use serial.
    """
    global _rouge_scorer
    with _rouge_lock:
        if _rouge_scorer is None:
            from rouge_score import rouge_scorer

            _rouge_scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
        scores = _rouge_scorer.score(reference or "", prediction or "")
    return {name: float(s.fmeasure) for name, s in scores.items()}

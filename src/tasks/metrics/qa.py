"""Extractive-QA scoring exactly as the official scripts define it: SQuAD v1.1 (evaluate-v1.1.py) normalisation,
exact match and token F1, the max over gold answers, and HotpotQA's F1 (hotpot_evaluate_v1.py).

Official v1.1 behaviour kept on purpose: a gold answer that normalises to nothing (empty, whitespace, "the", ".")
stays in the gold list; an empty prediction matches it exactly (EM 1) yet scores F1 0 (no common token).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

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
    """SQuAD v1.1 token F1; 0.0 when prediction and gold share no token (including both empty, as v1.1 does)."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def max_over_golds(fn: Callable[[str, str], float], prediction: str, golds: Sequence[str]) -> float:
    """The best score over the gold answers (v1.1's metric_max_over_ground_truths); 0.0 when there is no gold
    (the official script would stop with an error there)."""
    return max((fn(prediction, g) for g in golds), default=0.0)


def hotpot_f1(prediction: str, gold: str) -> float:
    """HotpotQA's official F1: yes/no/noanswer only match themselves exactly (hotpot_evaluate_v1.py)."""
    norm_pred, norm_gold = normalize_answer(prediction), normalize_answer(gold)
    special = ("yes", "no", "noanswer")
    if (norm_pred in special or norm_gold in special) and norm_pred != norm_gold:
        return 0.0
    return token_f1(prediction, gold)

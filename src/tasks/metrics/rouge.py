"""ROUGE for summaries (XSum, custom `rouge_l` tasks): Google's rouge-score with the Porter stemmer on."""

from __future__ import annotations

import threading

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

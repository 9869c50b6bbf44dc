"""Answer extraction and scoring shared by the task domains, one module per kind of answer: qa (SQuAD/HotpotQA
official EM and F1), numbers (exact numeric answers), yes_no (the yes/no parse), labels (class labels), rouge
(summaries). Each is proven against its reference implementation in tests/test_metric_oracles.py."""

from src.tasks.metrics.labels import match_label, normalize_label
from src.tasks.metrics.numbers import numbers_equal, parse_exact_number, parse_number
from src.tasks.metrics.qa import exact_match, hotpot_f1, max_over_golds, normalize_answer, token_f1
from src.tasks.metrics.rouge import rouge
from src.tasks.metrics.yes_no import parse_yes_no, yes_no_text

__all__ = ["exact_match", "hotpot_f1", "match_label", "max_over_golds", "normalize_answer", "normalize_label",
           "numbers_equal", "parse_exact_number", "parse_number", "parse_yes_no", "rouge", "token_f1",
           "yes_no_text"]

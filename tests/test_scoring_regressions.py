"""Regression tests for the scoring bugs of issue 11: yes/no negation and hedges, GSM8K's relative tolerance,
strict NER spans, SQuAD's empty golds and the Wilson quantile. Each bug is pinned by the case that showed it."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest

from src.registry import load_config
from src.stats import core as stats
from src.tasks import get_task
from src.tasks.example import TaskExample
from src.tasks.metrics import exact_match, max_over_golds, numbers_equal, parse_exact_number, parse_number, \
    parse_yes_no, token_f1


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return load_config(tmp_path_factory.mktemp("workdir"))


def _ex(gold, inputs=None) -> TaskExample:
    return TaskExample("t-1", inputs or {"question": "q"}, {}, gold, str(gold))


# ---- yes / no: the issue's cases --------------------------------------------------------------------------------

@pytest.mark.parametrize("reply, expected", [
    ("Not true", False), ("not correct", False), ("It is not true", False), ("That is not right", False),
    ("It's not wrong", True), ("yes and no", None), ("Nope", False), ("Yeah", True), ("Absolutely", True),
    ("Probably not", False),
])
def test_issue_yes_no_cases(reply, expected):
    assert parse_yes_no(reply) is expected


# ---- yes / no: a generated table of phrasings ---------------------------------------------------------------------

_YES = ["yes", "yeah", "yep", "yup", "true", "correct", "right", "affirmative"]
_NO = ["no", "nope", "nah", "false", "incorrect", "wrong", "negative"]
_TRUTH = {"true", "correct", "right", "false", "incorrect", "wrong"}  # words a negation can apply to
_NEGATIONS = ["not {w}", "it is not {w}", "that's not {w}", "it isn't {w}", "that is not {w}"]
_CONFIDENT = ["", "probably ", "definitely ", "i think ", "i'd say ", "the answer is ", "so, ", "well, ",
              "based on the passage, ", "answer: ", "certainly "]
_DOUBT = ["maybe ", "perhaps ", "possibly ", "it could be that "]
_PUNCT = ["{x}", "{x}.", "{x}!", "**{x}**", '"{x}"', "{x}, because the passage says so."]
_CASES = [str.lower, str.capitalize, str.upper]


def _phrasings():
    """(reply, expected) for answer word x negation x hedge x punctuation x case."""
    for word in _YES + _NO:
        polarity = word in _YES
        forms = [(word, polarity)]
        if word in _TRUTH:
            forms += [(n.format(w=word), not polarity) for n in _NEGATIONS]
        for (core, value), hedge, punct, case in itertools.product(forms, _CONFIDENT + _DOUBT, _PUNCT, _CASES):
            expected = None if hedge in _DOUBT else value
            yield case(punct.format(x=hedge + core)), expected


_TABLE = list(_phrasings())


def test_generated_yes_no_table():
    assert len(_TABLE) > 3000
    wrong = [(reply, expected, parse_yes_no(reply)) for reply, expected in _TABLE
             if parse_yes_no(reply) is not expected]
    assert not wrong, wrong[:20]
    # every polarity and the parse-failure outcome are well represented
    outcomes = [e for _, e in _TABLE]
    assert outcomes.count(True) > 500 and outcomes.count(False) > 500 and outcomes.count(None) > 500


@pytest.mark.parametrize("reply, expected", [
    # hedged and bare forms
    ("probably", True), ("definitely not", False), ("absolutely not", False), ("of course", True),
    ("Of course not.", False), ("not at all", False), ("Not really.", False), ("I think so", True),
    ("I don't think so.", False), ("I think not", False), ("It is.", True), ("It isn't.", False),
    ("They do", True), ("They don't", False), ("He can't.", False), ("Sure", True), ("Indeed", True),
    ("Never", False), ("no way", False), ("Y", True), ("N", False), ("It's not incorrect", True),
    ("That's correct.", True), ("The statement is false.", False), ("Yes, it is.", True), ("No, it is not.", False),
    ("#### yes", True), ("Final answer: No", False), ("The answer is: yes", True),
    ("According to the text, no.", False), ("Yes - the passage says so", True), ("no, because it is too small", False),
    # ambiguous, uncertain, or no answer at all: parse failures, never guesses
    ("yes or no", None), ("true/false", None), ("Yes, no.", None), ("No, yes", None), ("Yes, but no.", None),
    ("No, it is true.", None), ("maybe", None), ("it depends", None), ("I'm not sure", None), ("unclear", None),
    ("both", None), ("neither", None), ("Not necessarily", None), ("not entirely true", None), ("not exactly", None),
    ("It could be true", None), ("It might be", None), ("", None), ("   ", None), ("n/a", None),
    ("The passage does not say", None), ("He was right about it", None), ("It is not clear", None),
    ("Cannot be determined", None), ("There is not enough information", None), (None, None),
    (True, True), (False, False),
])
def test_yes_no_rules(reply, expected):
    assert parse_yes_no(reply) is expected


@pytest.mark.parametrize("key", ["analysis", "agentic"])
def test_ambiguous_reply_is_recorded_as_unrecognised(config, key):
    task = get_task(key, config)
    for reply in ("yes and no", "maybe", "It could be true"):
        s = task.score(_ex(True), {"answer": reply})
        assert s.score == 0.0 and s.extras == {"answer_unrecognised": 1.0}
    negated = task.score(_ex(False), {"answer": "That is not right"})
    assert negated.correct and negated.extras == {}


# ---- GSM8K numbers ------------------------------------------------------------------------------------------------

def test_numbers_have_no_relative_tolerance():
    assert not numbers_equal(parse_number("1450001"), 1450000.0)  # the issue's case: off by one above 1e6
    assert not numbers_equal(parse_exact_number("1450001"), parse_exact_number("1450000"))
    assert not numbers_equal(parse_exact_number("1000000000001"), parse_exact_number("1000000000000"))
    assert numbers_equal(parse_exact_number("1,450,000"), parse_exact_number("1450000"))
    # float representation error is all that is tolerated
    assert numbers_equal(0.1 + 0.2, 0.3) and not numbers_equal(0.3000001, 0.3)
    assert numbers_equal(parse_exact_number("18.0"), Fraction(18)) and numbers_equal(parse_exact_number("36/2"), 18)


@pytest.mark.parametrize("answer, gold, ok", [
    ("\u22123", "-3", True), ("\u22123", "3", False), ("The answer is \u221212.5", "-12.5", True),
    ("1450001", "1450000", False), ("1,450,000", "1450000", True), ("$1,450,000.00", "1450000", True),
    ("2000001", "2000000", False), ("0.333333", "1/3", False),
])
def test_math_exact_decimals_and_unicode_minus(config, answer, gold, ok):
    assert get_task("math", config).score(_ex(gold), {"answer": answer}).correct is ok


# ---- NER: exact spans -----------------------------------------------------------------------------------------------

def test_ner_trailing_punctuation_is_not_the_entity(config):
    """"Ricky Watters ," matched gold "Ricky Watters" before: the comma is a token of the span, so it is wrong."""
    task = get_task("extraction", config)
    gold = {"PER": ["Ricky Watters"], "ORG": [], "LOC": [], "MISC": []}
    s = task.score(_ex(gold), {"persons": ["Ricky Watters ,"]})
    assert s.score == 0.0 and (s.extras["tp"], s.extras["fp"], s.extras["fn"]) == (0.0, 1.0, 1.0)
    assert s.extras["lenient_f1"] == 1.0  # the old matching, kept only as a named secondary metric
    lower = task.score(_ex(gold), {"persons": ["ricky watters"]})
    assert lower.score == 0.0 and lower.extras["lenient_f1"] == 1.0


# ---- SQuAD v1.1: empty and whitespace-only golds --------------------------------------------------------------------

def test_squad_empty_golds_as_the_official_script():
    # v1.1: EM compares normalised strings (empty == empty); F1 is 0 without a common token, even for two empties
    assert exact_match("", "") == 1.0 and token_f1("", "") == 0.0
    assert exact_match("", "   ") == 1.0 and exact_match("the", ".") == 1.0
    assert max_over_golds(exact_match, "", ["   ", "Denver"]) == 1.0
    assert max_over_golds(token_f1, "", ["   ", "Denver"]) == 0.0


def test_rag_keeps_whitespace_golds_in_the_max(config):
    task = get_task("rag", config)
    record = {"id": "q1", "context": "Denver won.", "question": "Who won?",
              "answers": {"text": [" ", "Denver", "Denver"], "answer_start": [0, 0, 0]}}
    ex = task.example_from_record(record, 0, "validation")
    assert ex.gold == [" ", "Denver"] and ex.labels == {"answer": "Denver"}
    empty = task.score(ex, {"answer": ""})
    assert empty.extras["em"] == 1.0 and empty.score == 0.0 and empty.correct  # official: EM 1, F1 0
    assert task.score(ex, {"answer": "Denver"}).score == 1.0


# ---- Wilson ---------------------------------------------------------------------------------------------------------

def test_wilson_uses_the_exact_normal_quantile():
    from statistics import NormalDist

    assert stats.Z_95 == NormalDist().inv_cdf(0.975)
    lo_exact = stats.wilson_interval(40, 50)[0]
    lo_rounded = stats.wilson_interval(40, 50, z=1.96)[0]
    assert lo_exact != lo_rounded and abs(lo_exact - lo_rounded) < 2e-5

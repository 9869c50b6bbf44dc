"""Yes/no answers: a free-text reply read as True (yes), False (no) or None (no answer, or an ambiguous one).

The parse, precisely (every rule is exercised by the generated phrasing table in tests/test_yes_no.py):

1. Normalisation. A bool is its own answer. Text is lower-cased; curly quotes become straight; markdown marks
   (* _ ` # >) and surrounding quotes are dropped; contractions are expanded ("isn't" -> "is not", "it's" ->
   "it is", "i'd" -> "i would"); "N/A" is no answer; "/" and "&" become the words "or" / "and".
2. Answer marker. If the reply names its answer ("answer: ...", "the answer is ...", "final answer = ...",
   "#### ..."), only the text after the LAST such marker is read.
3. Clauses. The text is cut into clauses at . ! ? ; : , newlines, brackets and spaced dashes. Clauses made only of
   lead-ins (rule 4) and framing clauses ("based on the passage", "according to the text", "looking at the
   facts", "in short", ...) are skipped. The first remaining clause is the deciding clause; nothing after it can
   make a reply an answer (a reply's answer is its LEADING answer word).
4. Deciding clause := lead-in* polarity tail.
   - lead-ins: fillers (so, well, ok, then, therefore, thus, hence, overall, honestly), subject + verb frames
     ("it is", "that would be", "the statement is", "the answer is", "i think", "i believe", "i would say") and
     confident hedges (probably, likely, most likely, definitely, certainly, surely, absolutely, clearly,
     obviously, of course, indeed, sure).
   - polarity, in order of precedence:
     a. [negator]* answer word. YES words: yes, yeah, yea, yep, yup, aye, y, true, correct, right, affirmative,
        ok-style affirmations (sure, indeed, absolutely, definitely, certainly, of course). NO words: no, nope,
        nah, n, false, incorrect, wrong, negative, never. Each negator (not, never, hardly; "n't") flips the
        polarity: "not true" / "it is not correct" / "that is not right" = no, "it is not wrong" = yes.
        Neutral intensifiers between a negator and the word are skipped (really, actually, at all).
     b. a bare negator ending the clause, or followed only by neutral intensifiers: "not", "probably not",
        "absolutely not", "certainly not", "not really", "not at all" = no.
     c. a confident hedge standing alone: "absolutely", "definitely", "probably", "of course" = yes.
     d. "i think so" / "i believe so" = yes; "i don't think so" = no; "i think not" ending its clause = no.
     e. a short verb answer: pronoun + auxiliary [+ not], alone in its clause: "it is" / "they do" = yes,
        "it is not" / "he can't" = no.
   - uncertainty makes the reply a parse failure (None), never a guess: a deciding clause with a hedge of doubt
     (maybe, perhaps, possibly, might, may be, could be, unclear, uncertain, unsure, unknown, depends, not sure,
     cannot tell, cannot be determined, not enough information, both, neither, sometimes, partly) or a partial
     negation ("not entirely true", "not necessarily", "not exactly", "not quite", "not always").
   - conflicts are a parse failure: the tail (or the next clause) joins an answer of the other polarity with a
     conjunction or stands alone as one ("yes and no", "yes or no", "true/false", "no, yes", "yes, but no").
   - anything else in the deciding clause (a sentence that does not start with an answer) is no answer (None).

None is recorded by the scorers as `answer_unrecognised`.
"""

from __future__ import annotations

import re

YES_WORDS = frozenset({"yes", "yeah", "yea", "yep", "yup", "aye", "y", "true", "correct", "right", "affirmative"})
NO_WORDS = frozenset({"no", "nope", "nah", "n", "false", "incorrect", "wrong", "negative", "never"})
# Words that confirm on their own ("Absolutely.") and otherwise only strengthen the answer that follows them.
AFFIRMING_HEDGES = frozenset({"sure", "indeed", "absolutely", "definitely", "certainly", "surely", "clearly",
                              "obviously", "ofcourse", "probably", "likely", "undoubtedly", "totally"})
NEGATORS = frozenset({"not", "never", "hardly"})
_NEUTRAL = frozenset({"really", "actually", "atall", "so", "indeed"})
_PARTIAL = frozenset({"entirely", "completely", "fully", "wholly", "necessarily", "exactly", "quite", "always",
                      "totally", "altogether", "strictly", "precisely", "much"})
# Pure fillers: a clause of nothing else is skipped ("Well, yes." / "Answer: no").
_FILLERS = frozenset({"so", "well", "ok", "okay", "then", "therefore", "thus", "hence", "overall", "honestly",
                      "hmm", "um", "uh", "oh", "ah", "basically", "simply", "final", "answer", "my"})
# Frames read before the answer word: "it is", "the statement would be", "i think", "that is".
_FRAMES = frozenset({"the", "a", "an", "is", "would", "be", "will", "should", "must", "statement", "claim", "it",
                     "that", "this", "which", "seems", "appears", "sounds", "apparently", "i", "we", "think",
                     "believe", "say", "guess", "feel", "reckon", "was", "are", "were", "its", "answer", "to",
                     "me", "my", "response", "reply", "hypothesis", "assertion"})
_CONJUNCTIONS = frozenset({"and", "or", "but", "nor", "yet"})
_PRONOUNS = frozenset({"it", "they", "he", "she", "that", "this", "there", "i", "we", "you", "one", "these",
                       "those"})
_AUXILIARIES = frozenset({"is", "are", "was", "were", "am", "does", "do", "did", "can", "could", "will", "would",
                          "shall", "should", "has", "have", "had", "must", "ca", "wo"})
_FRAMING = re.compile(r"^(?:based on|according to|from|given|looking at|considering|in|as per|after|to answer|"
                      r"judging by|per|with|for)\b")

_CONTRACTIONS = [(re.compile(p), r) for p, r in (
    (r"\bcan't\b", "can not"), (r"\bwon't\b", "will not"), (r"\bcannot\b", "can not"), (r"n't\b", " not"),
    (r"\b(it|that|this|there|what|he|she)'s\b", r"\1 is"), (r"'re\b", " are"), (r"'m\b", " am"),
    (r"'d\b", " would"), (r"'ll\b", " will"), (r"'ve\b", " have"))]
# Multi-word expressions read as one token (after contractions are expanded). Doubt words become tokens that are
# neither lead-ins nor answers, so a clause led by doubt holds no answer.
_PHRASES = [(re.compile(p), r) for p, r in (
    (r"\b(?:i|we) (?:do|did) not (?:think|believe|suppose|guess|expect|reckon) so\b", " no "),
    (r"\b(?:i|we) (?:think|believe|suppose|guess|expect|reckon) not\b(?=\s*(?:[.!?,;:\n]|$))", " no "),
    (r"\b(?:i|we) (?:think|believe|suppose|guess|expect|reckon|hope) so\b", " yes "),
    (r"\bof course\b", " ofcourse "), (r"\bno way\b", " no "), (r"\bat all\b", " atall "),
    (r"\bnot sure\b", " notsure "), (r"\bcan not (?:tell|say|be determined|determine|know|be sure)\b", " cannottell "),
    (r"\b(?:not enough|insufficient) (?:information|info|evidence|context)\b", " insufficient "),
    (r"\b(?:could|may|might) (?:be|have)\b", " couldbe "),
    (r"\b(?:most|very|highly|quite|more than) likely\b", " likely "), (r"\bfor sure\b", " sure "))]
_MARKER = re.compile(r"(?:\banswer\b\s*(?:is\b|:|=|-)|####)")
_CLAUSE = re.compile(r"[.!?;:,\n()\[\]{}]+|\s[-\u2013\u2014]+\s|\s[-\u2013\u2014]+$|^[-\u2013\u2014]+\s")
_WORD = re.compile(r"[a-z]+")


def _normalise(text: str) -> str:
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = text.replace("####", " answer: ")
    text = re.sub(r"[*_`#>\"]", " ", text)
    for pattern, repl in _CONTRACTIONS:
        text = pattern.sub(repl, text)
    text = re.sub(r"\bn\s*/\s*a\b", " notapplicable ", text)  # "N/A" is no answer, not "n(o) or a"
    text = text.replace("/", " or ").replace("&", " and ")
    for pattern, repl in _PHRASES:
        text = pattern.sub(repl, text)
    return text


def _verb_answer(words: list[str]) -> bool | None:
    """A short verb answer, alone in its clause: pronoun + auxiliary [+ not] ("It is." / "They don't.")."""
    i = 0
    while i < len(words) and (words[i] in _FILLERS or words[i] in AFFIRMING_HEDGES):
        i += 1
    rest = words[i:]
    if len(rest) < 2 or rest[0] not in _PRONOUNS or rest[1] not in _AUXILIARIES:
        return None
    tail = [w for w in rest[2:] if w not in _NEUTRAL]
    if not tail:
        return True
    return False if tail == ["not"] else None


def _polarity(words: list[str]) -> tuple[bool | None, int]:
    """(answer, index after it) for a clause made of lead-ins then an answer; (None, 0) if it holds none."""
    verb = _verb_answer(words)
    if verb is not None:
        return verb, len(words)
    i, hedged = 0, False
    while i < len(words) and (words[i] in _FILLERS or words[i] in _FRAMES or words[i] in AFFIRMING_HEDGES):
        hedged = hedged or words[i] in AFFIRMING_HEDGES
        i += 1
    negated = False
    while i < len(words) and words[i] in NEGATORS:
        negated = not negated
        i += 1
        while i < len(words) and words[i] in _NEUTRAL:
            i += 1
        if i < len(words) and words[i] in _PARTIAL:
            return None, 0  # "not entirely true", "not necessarily": a partial negation is no answer
    if i < len(words) and words[i] in YES_WORDS:
        return (not negated), i + 1
    if i < len(words) and words[i] in NO_WORDS:
        return negated, i + 1
    if negated and i == len(words):
        return False, i  # "not", "probably not", "not really", "absolutely not"
    if hedged and not negated and i == len(words) and all(w in _FILLERS or w in AFFIRMING_HEDGES for w in words):
        return True, i  # "Absolutely.", "Of course", "Probably"
    return None, 0


def _conflicts(answer: bool, tail: list[str]) -> bool:
    """Does the tail join an answer of the other polarity ("... and no", "... or false")?"""
    for j, word in enumerate(tail):
        if word in _CONJUNCTIONS:
            other, _ = _polarity(tail[j + 1:])
            if other is not None and other != answer:
                return True
    return False


def _skippable(words: list[str]) -> bool:
    return not words or all(w in _FILLERS for w in words)


def parse_yes_no(value: object) -> bool | None:
    """True for a yes, False for a no, None when the reply gives neither or is ambiguous (module docstring)."""
    if isinstance(value, bool):
        return value
    if value is None:
        return None
    text = _normalise(str(value))
    marks = list(_MARKER.finditer(text))
    if marks:
        text = text[marks[-1].end():]
    clauses = [_WORD.findall(c) for c in _CLAUSE.split(text)]
    for k, words in enumerate(clauses):
        if _skippable(words):
            continue
        answer, end = _polarity(words)
        if answer is None:
            if _FRAMING.match(" ".join(words)):
                continue  # "Based on the passage, yes."
            return None
        if _conflicts(answer, words[end:]):
            return None
        following = next((w for w in clauses[k + 1:] if not _skippable(w)), None)
        if following:
            lead = following[1:] if following[0] in _CONJUNCTIONS else following
            other, end2 = _polarity(lead)
            # "No, yes." / "Yes, but no" / "No, it is true.": a second bare answer of the other polarity.
            if other is not None and other != answer and end2 == len(lead):
                return None
        return answer
    return None


def yes_no_text(value: bool) -> str:
    return "yes" if value else "no"

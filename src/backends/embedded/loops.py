"""When is a reply looping? The rule that stops an embedded model's generation once its reply repeats itself
(src.backends.embedded.loop_guard streams the reply and applies it after every token).

Small local models under greedy decoding fall into loops they never leave: SmolLM2-135M writes the same entity
("Soccer", "Soccer", ...), the same clause or the same sentence until the task's generation bound cuts it (12 of 16
NER replies in a profile of the first run). Every token after the loop is established is compute spent on nothing:
the reply is cut at its bound either way. A reply is said to loop when its tail is periodic: its last characters
repeat one unit of `period` characters (period <= MAX_PERIOD) over at least MIN_SPAN characters, and over at least
MIN_COPIES copies of a unit shorter than LONG_PERIOD (a list item, a phrase) or LONG_COPIES copies of a longer one
(a sentence); a unit of whitespace alone never loops. The thresholds were set against the gold answers: a GSM8K
solution writes one line twice in a row, an MBPP regex repeats a 49-character group 3.8 times, another MBPP answer
pads a line with 100 spaces. No gold answer of any split of any task in the offline datasets or the built-in samples
- the replies a correct model would write, as the structured adapter's JSON and as each text field alone, checked
one character at a time - contains such a tail anywhere (tests/test_loop_guard.py checks all of them, about
115,000): stopping a loop cuts only what the model repeats, never what a correct answer of these tasks needs.
"""

from __future__ import annotations

MAX_PERIOD = 192  # longest repeated unit looked for (a long sentence)
MIN_SPAN = 128  # characters of periodic tail before a reply is called looping (about 35-40 tokens)
MIN_COPIES = 4  # copies of a short unit (a regex group of 49 characters is repeated 3.8 times in a gold answer)
LONG_PERIOD = 64  # a unit at least this long (a sentence) is a loop at LONG_COPIES copies
LONG_COPIES = 3  # (a gold solution writes one line twice in a row)
_PROBE = 8  # the tail probed for earlier occurrences; a period shorter than this is found by its overlap


def _needed(period: int) -> int:
    """Characters of periodic tail that make a loop of this period."""
    return max(MIN_SPAN, (LONG_COPIES if period >= LONG_PERIOD else MIN_COPIES) * period)


def looping(text: str) -> bool:
    """Does `text` end in a loop (a periodic tail as the module describes)?"""
    n = len(text)
    if n < MIN_SPAN:
        return False
    probe = text[n - _PROBE:]
    lo = max(0, n - MAX_PERIOD - _PROBE)
    end = n - 1  # rfind's window end: an occurrence j must have j + _PROBE <= end, i.e. a period of 1 or more
    while (j := text.rfind(probe, lo, end)) >= 0:
        period = n - _PROBE - j
        need = _needed(period)
        if n >= need and text[n - need:n - period] == text[n - need + period:] and not text[n - period:].isspace():
            return True
        end = j + _PROBE - 1  # the next occurrence further back: a longer period
    return False


def first_loop_end(text: str) -> int | None:
    """The shortest prefix of `text` that ends in a loop (its length), or None: where a streamed reply would have
    been stopped had it arrived one character at a time (the strictest check; streaming checks once per token)."""
    for end in range(MIN_SPAN, len(text) + 1):
        if looping(text[:end]):
            return end
    return None

"""Numeric answers (GSM8K, custom `numeric` tasks): the answer's number, compared as an exact decimal.

parse_exact_number reads the number a reply gives: the last number after a final-answer marker ("#### 18",
"answer: 18", "the answer is 18"), else the last number in the reply. Thousands separators (only in groups of
three), a leading "$", decimals, a fraction "3/4" and the Unicode minus sign "\u2212" are understood.
numbers_equal compares exactly: two answers are equal when they name the same rational number ("18" = "18.0" =
"36/2"); a float only ever differs by its representation error (a few ulps), never by a relative tolerance, so
1450001 is not 1450000.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

# A number with optional sign, thousands separators (only in groups of three) and decimals, or a fraction.
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?")
_FINAL = re.compile(r"####|answer\s*(?:is|:)", re.IGNORECASE)
_MINUS = str.maketrans({"\u2212": "-", "\u2012": "-", "\ufe63": "-", "\uff0d": "-"})
Number = Fraction | float | int


def parse_exact_number(text: object) -> Fraction | None:
    """The reply's number as an exact Fraction (see the module docstring), None when it names none."""
    if text is None:
        return None
    text = str(text).translate(_MINUS).strip()
    if not text:
        return None
    tail = _FINAL.split(text)[-1]
    matches = _NUMBER.findall(tail) or _NUMBER.findall(text)
    if not matches:
        return None
    raw = matches[-1].replace(",", "").replace(" ", "")
    try:
        return Fraction(raw)
    except (ValueError, ZeroDivisionError):
        return None


def parse_number(text: object) -> float | None:
    """parse_exact_number as a float (for display and arithmetic); compare with numbers_equal on exact values."""
    value = parse_exact_number(text)
    return None if value is None else float(value)


def numbers_equal(a: Number | None, b: Number | None) -> bool:
    """Exact equality of two numbers; when either is a float, equality up to float representation error only."""
    if a is None or b is None:
        return False
    if isinstance(a, float) or isinstance(b, float):
        fa, fb = float(a), float(b)
        if not (math.isfinite(fa) and math.isfinite(fb)):
            return fa == fb
        return fa == fb or abs(fa - fb) <= 4 * math.ulp(max(abs(fa), abs(fb)))
    return Fraction(a) == Fraction(b)

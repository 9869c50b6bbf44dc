"""How numbers, intervals and money are written in the golden tables and the report."""

from __future__ import annotations

import csv
import io
import math
import re
from typing import Any

from src.results.files import csv_float

__all__ = ["csv_float"]  # re-exported: golden tables format numbers as the study CSVs do


def is_missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def pct(x: float | None) -> str:
    return "–" if is_missing(x) else f"{100 * x:.1f}"


def pts(x: float | None) -> str:
    return "–" if is_missing(x) else f"{100 * x:+.1f}"


def ci_txt(lo: float, hi: float, signed: bool = False) -> str:
    f = pts if signed else pct
    return "[–]" if is_missing(lo) or is_missing(hi) else f"[{f(lo)}, {f(hi)}]"


def mde_txt(x: float | None) -> str:
    """A minimum detectable effect in points ("none reachable" when no effect the data allow reaches the power)."""
    if is_missing(x):
        return "–"
    return "none reachable" if x == float("inf") else f"{100 * x:.1f}"


def pval(p: float) -> str:
    if is_missing(p):
        return "–"
    return "<0.0001" if p < 1e-4 else (f"{p:.4f}" if p < 0.01 else f"{p:.3f}")


def money(x: float | None) -> str:
    if is_missing(x):
        return "n/a"
    if x == 0:
        return "$0"
    if math.isinf(x):
        return "∞"
    if abs(x) >= 100:
        return f"${x:,.0f}"
    if abs(x) >= 1:
        return f"${x:,.2f}"
    digits = -math.floor(math.log10(abs(x))) + 2
    return f"${x:.{digits}f}"


def num(x: float | None, fmt: str = ".1f") -> str:
    return "–" if is_missing(x) else format(x, fmt)




def compact(value: Any) -> str:
    """A number from an optional CSV shown compactly (4 significant digits); anything else as given."""
    try:
        return format(float(value), ".4g")
    except (TypeError, ValueError):
        return "" if value is None else str(value)


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name)


def csv_text(header: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow(["" if is_missing(v) else v for v in row])
    return buf.getvalue()



"""The tipping-point regimes of a (model, task) pair, from its baseline and its significant lifts (thresholds in src.registry.protocol)."""

from __future__ import annotations

from src.registry.protocol import ALREADY_SOLVED_ABOVE, TOO_HARD_BELOW

REGIMES = ("too hard", "already solved", "responsive", "resistant")


def classify_regime(baseline: float, verdicts: dict[int, str], too_hard_below: float = TOO_HARD_BELOW,
                    solved_above: float = ALREADY_SOLVED_ABOVE) -> tuple[str, int | None]:
    """(regime, smallest n with a significant lift).

    The baseline decides first, as in the original study: below `too_hard_below` the model cannot do the task at
    all, above `solved_above` there is little left to gain (both bounds strict: exactly 10% is not too hard).
    Otherwise the pair is responsive when some n gives a significant lift (paired CI above 0 and p < 0.05, the p
    Holm-corrected over the pair's n values by the analyzer), else resistant. The smallest significant n is
    reported whatever the regime.
    """
    lifted = sorted(n for n, v in verdicts.items() if v == "improved")
    smallest = lifted[0] if lifted else None
    if baseline < too_hard_below:
        return "too hard", smallest
    if baseline > solved_above:
        return "already solved", smallest
    return ("responsive" if smallest is not None else "resistant"), smallest

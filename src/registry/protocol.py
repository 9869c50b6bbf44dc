"""The study protocol's constants (the original study's design; see TECHNICAL_SPEC.md)."""

STUDY_SEEDS = (10, 20, 30)
DEFAULT_EVAL_LIMIT = 50
# Tipping-point regime thresholds (phase 5), on the baseline primary score in [0, 1].
TOO_HARD_BELOW = 0.10
ALREADY_SOLVED_ABOVE = 0.70
# Tipping point (phase 5): the demo counts tried and the budget preset, unless the command or study file says.
TIPPING_NS = (0, 1, 2, 3, 5, 8)
TIPPING_PRESET = "quick"

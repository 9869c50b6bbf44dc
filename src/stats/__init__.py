"""Statistics own the numbers behind every verdict: core.py (pure functions: intervals, exact and permutation tests,
Holm), comparison.py (a task's score with its interval, and a paired comparison of two arms), power.py (power,
minimum detectable effects, the n a target effect needs) and selection.py (choose on one half, test on the other;
Holm within a pair)."""

"""Statistics own the numbers behind every verdict: core.py (pure functions: intervals, exact and permutation tests,
Holm) and comparison.py (a task's score with its interval, and a paired comparison of two arms)."""

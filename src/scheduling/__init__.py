"""The study scheduler: a study as a graph of units (graph.py), built from a study file (study.py), run with real
concurrency in one process (local.py) under per-endpoint budgets (src.backends.endpoints), watched through one
progress model (progress.py)."""

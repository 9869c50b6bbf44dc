"""The study scheduler: a study as a graph of units (graph.py), built from a study file (study.py; its settings and
stages in settings.py, the demo-curve and tipping-point units in later_studies.py), run with real concurrency in one
process (local.py) or with its evaluations on a Ray cluster (ray_executor.py) under per-endpoint budgets
(src.backends.endpoints), watched through one progress model (progress.py)."""

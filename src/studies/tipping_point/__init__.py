"""Study: the tipping point (phase 5) — from how many optimization examples does a model's score start to improve?
runner.py evaluates (model, task, n, seed) cells, analyzer.py turns them into curves and regimes (regimes.py)."""

"""Optimization owns making a better program: budget presets (presets.py), one optimizer per file (arms/), the
unit over seeds with the best kept on dev (search.py), and saved programs (programs.py)."""

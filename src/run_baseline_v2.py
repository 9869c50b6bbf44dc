"""Entry point: python -m src.run_baseline_v2 — the baseline stage (the command lives in src.commands.baseline)."""

from src.commands.common import run
from src.commands.baseline import main

if __name__ == "__main__":
    run(main)

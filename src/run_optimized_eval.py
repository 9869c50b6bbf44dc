"""Entry point: python -m src.run_optimized_eval — the optimized-eval stage (the command lives in src.commands.optimized_eval)."""

from src.commands.common import run
from src.commands.optimized_eval import main

if __name__ == "__main__":
    run(main)

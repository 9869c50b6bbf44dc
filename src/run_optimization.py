"""Entry point: python -m src.run_optimization — the optimize stage (the command lives in src.commands.optimize)."""

from src.commands.common import run
from src.commands.optimize import main

if __name__ == "__main__":
    run(main)

"""Entry point: python -m src.plan — the study planner: n per task for a target effect, LM calls and cost."""

from src.commands.common import run
from src.commands.plan import main

if __name__ == "__main__":
    run(main)

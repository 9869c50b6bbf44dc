"""Entry point: python -m src.consolidate_results — the consolidate stage: golden files and report (the command lives in src.commands.consolidate)."""

from src.commands.common import run
from src.commands.consolidate import main

if __name__ == "__main__":
    run(main)

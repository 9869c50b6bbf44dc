"""Entry point: python -m src.verify_splits — proves the splits disjoint and the gold answers scoring 100% (the command lives in src.commands.verify_splits)."""

from src.commands.common import run
from src.commands.verify_splits import main

if __name__ == "__main__":
    run(main)

"""Entry point: python -m src.tipping_point.runner — the tipping-point study (phase 5) (the command lives in src.commands.tipping_point)."""

from src.commands.common import run
from src.commands.tipping_point import main

if __name__ == "__main__":
    run(main)

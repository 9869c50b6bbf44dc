"""Entry point: python -m src.tipping_point.analyzer — the tipping-point analysis (the command lives in src.commands.tipping_point)."""

from src.commands.common import run
from src.commands.tipping_point import analyze_main

if __name__ == "__main__":
    run(analyze_main)

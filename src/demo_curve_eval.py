"""Entry point: python -m src.demo_curve_eval — the demo-count curve study (phase 3) (the command lives in src.commands.demo_curves)."""

from src.commands.common import run
from src.commands.demo_curves import main

if __name__ == "__main__":
    run(main)

"""Entry point: python -m src.experiment — the whole study (./run_experiment.sh) (the command lives in src.commands.experiment)."""

from src.commands.common import run
from src.commands.experiment import main

if __name__ == "__main__":
    run(main)

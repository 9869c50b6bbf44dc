"""Single-run entry point for one local model on one task; a thin wrapper over the shared evaluation engine."""

from src import cli
from src.evaluation import single_run_main

if __name__ == "__main__":
    cli.run(lambda: single_run_main("local"))

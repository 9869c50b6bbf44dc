"""Entry point: python -m src.api_eval — one API model on one task (the command lives in src.commands.single_eval)."""

from src.commands.common import run
from src.commands.single_eval import main

if __name__ == "__main__":
    run(lambda: main("api"))

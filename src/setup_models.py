"""Entry point: python -m src.setup_models — model set-up behind ./setup_models.sh (the command lives in src.commands.setup_models)."""

from src.commands.common import run
from src.commands.setup_models import main

if __name__ == "__main__":
    run(main)

"""Entry point: python -m src.rehearse — the full study's configuration against local stand-ins (the command lives in
src.commands.rehearse)."""

from src.commands.common import run
from src.commands.rehearse import main

if __name__ == "__main__":
    run(main)

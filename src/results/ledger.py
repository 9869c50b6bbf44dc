"""The unit ledger: how a runner reports each unit's outcome to ./run_experiment.sh (IA_UNIT_LEDGER names a file)."""

from __future__ import annotations

import json
import os

from src.results.provenance import scrub


def ledger_append(unit: str, status: str, message: str = "") -> None:
    """Report a unit's outcome to ./run_experiment.sh, when it is the caller (IA_UNIT_LEDGER names a file)."""
    path = os.environ.get("IA_UNIT_LEDGER")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"unit": unit, "status": status, "message": scrub(message)[:300]}) + "\n")

#!/usr/bin/env bash
# The test suite: sets up .venv on a fresh machine (as run_experiment.sh does), then runs pytest.
# Extra arguments go to pytest, e.g. ./run_tests.sh -k stats
set -euo pipefail
cd "$(dirname "$0")"
source scripts/ensure_env.sh
exec .venv/bin/python -m pytest "$@"

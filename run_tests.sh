#!/usr/bin/env bash
# The test suite: sets up .venv on a fresh machine (as run_experiment.sh does), then runs pytest.
# Extra arguments go to pytest, e.g. ./run_tests.sh -k stats
set -euo pipefail
cd "$(dirname "$0")"
# The test command also installs the pinned optional extras (test oracles, Ray, MLflow) so they are tested on
# every change; the main job installs none of them.
IA_EXTRAS="test ray mlflow" source scripts/ensure_env.sh
exec .venv/bin/python -m pytest "$@"

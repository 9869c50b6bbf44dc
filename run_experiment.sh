#!/usr/bin/env bash
# The whole study in one command. On a fresh machine it first makes .venv and installs what is pinned
# (requirements.txt + the embedded model), then runs ./run_experiment.sh's preset (default: auto).
#   ./run_experiment.sh [--preset auto|embedded|full|NAME | --config FILE] [--models a,b] [--tasks x,y]
#                       [--phases baseline,optimize,eval,consolidate] [--limit N] [--dry-run] [--force] ...
set -euo pipefail
cd "$(dirname "$0")"
source scripts/ensure_env.sh
exec .venv/bin/python -m src.experiment "$@"

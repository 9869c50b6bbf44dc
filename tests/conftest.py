"""Shared test fixtures: an isolated DSPy cache, the real offline datasets, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Before anything imports dspy: tests never read or write the project's response cache.
os.environ["DSPY_CACHEDIR"] = tempfile.mkdtemp(prefix="ia-test-dspy-cache-")
for _secret in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "IA_DATA_DIR", "IA_RESULTS_DIR",
                "IA_EVAL_ORDER"):
    os.environ.pop(_secret, None)

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"


@pytest.fixture
def shared_datasets() -> Path:
    if not (SHARED_DATASETS / "gsm8k").is_dir():
        pytest.skip(f"the offline dataset mirror is not at {SHARED_DATASETS}")
    return SHARED_DATASETS


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """An empty working directory (no models.json/tasks.json/.env) for config loading."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_cli(args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m <args>` from the project root (or cwd) with a clean environment plus `env`."""
    full_env = {k: v for k, v in os.environ.items()}
    full_env.update(env or {})
    full_env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd or ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def embedded_config():
    from src.backends import backend_for
    from src.registry import load_config

    config = load_config(ROOT)
    if backend_for(config.model("smollm2-135m"), config).problems():
        pytest.skip("embedded model not installed: ./setup_models.sh --embedded")
    return config

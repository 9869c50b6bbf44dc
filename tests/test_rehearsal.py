"""The rehearsal end to end: experiments/full.yaml's students and teacher and the reasoning study's models, under
their real keys, through every stage (baseline, optimize, optimized eval, reasoning baselines, demo curves without
--models, the tipping point on a reasoning model, consolidation and report) against the stand-ins — a small budget
and two tasks; the whole file is `python -m src.rehearse` (README)."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import run_cli

from src.registry import load_config
from src.registry.experiments import preset_file
from src.results import naming

pytestmark = pytest.mark.slow
TASKS = ("analysis", "qa")


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory, embedded_config):
    out = tmp_path_factory.mktemp("rehearsal")
    proc = run_cli(["src.rehearse", "--tasks", ",".join(TASKS), "--limit", "2", "--seeds", "10",
                    "--optimizer-preset", "quick", "--data", "builtin", "--stand-in-cap", "96",
                    "--results-dir", str(out)], timeout=3000)
    return out, proc


def _keys(name: str) -> list[str]:
    import yaml

    raw = yaml.safe_load(preset_file(name).read_text())
    return list(raw.get("students") or []) + list(raw.get("references") or [])


def test_every_step_passes(rehearsal):
    out, proc = rehearsal
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "rehearsal passed" in proc.stdout
    for step in ("study", "reasoning", "demo_curves", "tipping_point", "consolidate"):
        assert f"=== rehearsal: {step}:" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_every_key_has_its_results_and_every_sidecar_says_rehearsal(rehearsal):
    out, _ = rehearsal
    config = load_config()
    students = _keys("full")[:6]
    for key in set(_keys("full")) | set(_keys("reasoning")):
        prefix = naming.prefix_for(config.model(key))
        for task in TASKS:
            csv_path = naming.result_csv(out, prefix, "baseline", task, key)
            assert csv_path.exists(), csv_path
            meta = json.loads(naming.meta_path(csv_path).read_text())
            assert meta["run"]["rehearsal"]["stand_in"] == "smollm2-135m"
            assert meta["run"]["rehearsal"]["keys"][key] == config.model(key).provider
            if key in students:
                assert naming.result_csv(out, prefix, "optimized", task, key).exists()


def test_reasoning_models_record_their_traces(rehearsal):
    out, _ = rehearsal
    for key in ("qwen3_4b", "deepseek-r1_7b"):
        for task in TASKS:
            with naming.result_csv(out, "local", "baseline", task, key).open() as f:
                rows = list(csv.DictReader(f))
            assert rows and all(int(r["thinking_tokens"]) > 0 for r in rows if not r["error"]), (key, task)


def test_demo_curves_tipping_point_and_report(rehearsal):
    out, _ = rehearsal
    assert list((naming.tipping_dir(out) / "units").glob("*qwen3_4b*.csv"))
    report = (out / "report.html").read_text()
    assert 'id="rehearsal-banner"' in report
    summary = (out / "SUMMARY.md").read_text()
    assert "REHEARSAL" in summary
    for key in set(_keys("full")) | set(_keys("reasoning")):
        assert key in summary, key

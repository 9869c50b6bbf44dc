"""The rehearsal users run, whole, at the size README documents for a quick check: `python -m src.rehearse` on two
tasks with one example and one seed of the quick preset — experiments/full.yaml's six students and its teacher,
experiments/reasoning.yaml's models, demo curves without --models, the tipping point on qwen3_4b and consolidation,
every key under its real name through its own protocol's stand-in (Ollama front, OpenAI protocol) with a cold DSPy
cache. About 11 minutes on 2 cores (EXPERIMENT_RESULTS.md §5h); tests/test_rehearsal_fronts.py covers each protocol
and tests/test_rehearsal_decisions.py the decisions on a slice."""

from __future__ import annotations

import csv
import re
import sys

import pytest
import yaml

from conftest import ROOT, run_cli

csv.field_size_limit(sys.maxsize)


@pytest.mark.slow
def test_the_whole_rehearsal_passes_for_every_key_of_the_full_study(tmp_path, embedded_config):
    results = tmp_path / "results"
    proc = run_cli(["src.rehearse", "--tasks", "analysis,qa", "--limit", "1", "--seeds", "10",
                    "--optimizer-preset", "quick", "--data", "builtin", "--stand-in-cap", "64",
                    "--results-dir", str(results)], env={"DSPY_CACHEDIR": str(tmp_path / "dspy-cache")}, timeout=3600)
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-3000:]
    assert "rehearsal passed: every key ran through every step" in out
    for step in ("study", "reasoning", "demo_curves", "tipping_point", "consolidate"):
        assert re.search(rf"^  {step}\s+ok\s", out, re.M), f"step {step} did not pass"
    traffic = re.search(r"requests answered: Ollama /api/chat (\d+), OpenAI /v1/chat/completions (\d+)", out)
    assert int(traffic.group(1)) > 0 and int(traffic.group(2)) > 0
    full = yaml.safe_load((ROOT / "experiments" / "full.yaml").read_text(encoding="utf-8"))
    for key in full["students"]:  # every stage of the study, for every student, on both tasks
        for task in ("analysis", "qa"):
            assert list(results.glob(f"*_baseline_{task}_{key}.csv")), (key, task)
            assert list(results.glob(f"*_optimized_{task}_optimized_{key}.csv")), (key, task)
    for key in ("qwen3_4b", "deepseek-r1_7b"):  # reasoning traces found and counted, inside the output tokens
        with next(results.glob(f"local_baseline_analysis_{key}.csv")).open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        assert rows and all(0 < int(r["thinking_tokens"]) < int(r["output_tokens"]) for r in rows), rows
    assert list((results / "tipping_point").rglob("*qwen3_4b*")), "no tipping-point result for qwen3_4b"
    summary = (results / "golden" / "SUMMARY.md").read_text(encoding="utf-8")
    assert "REHEARSAL" in summary and (results / "golden" / "report.html").is_file()

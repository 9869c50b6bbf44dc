"""Results written by an older main keep resuming and consolidating. tests/fixtures/results_from_main_9e19819 was
made by commit 9e19819 (before the package layout): a baseline (analysis, math), a quick MIPROv2 optimization and its
optimized eval of the embedded model, 3 built-in examples each."""

from __future__ import annotations

import shutil

import pytest

from conftest import ROOT, run_cli

FIXTURE = ROOT / "tests" / "fixtures" / "results_from_main_9e19819"
COMMON = ["--models", "smollm2-135m", "--data", "builtin", "--limit", "3"]


@pytest.fixture
def old_results(tmp_path):
    out = tmp_path / "results"
    shutil.copytree(FIXTURE, out)
    return out


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_every_stage_reuses_what_the_older_version_made(embedded_config, old_results):
    before = _snapshot(old_results)
    base = run_cli(["src.run_baseline_v2", *COMMON, "--tasks", "analysis,math", "--results-dir", str(old_results)])
    assert base.returncode == 0, base.stderr[-2000:]
    assert base.stderr.count(": reused, n=3") == 2, base.stderr
    opt = run_cli(["src.run_optimization", "--models", "smollm2-135m", "--data", "builtin", "--tasks", "analysis",
                   "--preset", "quick", "--seeds", "10", "--results-dir", str(old_results)])
    assert opt.returncode == 0, opt.stderr[-2000:]
    assert "reused" in opt.stdout, opt.stdout
    ev = run_cli(["src.run_optimized_eval", *COMMON, "--tasks", "analysis", "--results-dir", str(old_results)])
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert ": reused, n=3" in ev.stderr
    after = _snapshot(old_results)
    changed = [str(p) for p in before if before[p] != after.get(p)]
    assert not changed, changed  # nothing rewritten: reuse is reuse


def test_older_results_consolidate(old_results):
    r = run_cli(["src.consolidate_results", "--results-dir", str(old_results)])
    assert r.returncode == 0, r.stderr[-2000:]
    summary = (old_results / "golden" / "SUMMARY.md").read_text()
    assert "smollm2-135m" in summary and "analysis" in summary
    assert (old_results / "golden" / "delta_scores.csv").read_text().splitlines()[1].startswith("smollm2-135m,")

"""./run_experiment.sh end to end on the embedded preset: completes, dry-run runs nothing, reruns reuse, bad input."""

from __future__ import annotations

import subprocess
import time

from conftest import ROOT


def _run(args: list[str], timeout: float = 1500) -> subprocess.CompletedProcess:
    return subprocess.run(["./run_experiment.sh", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path):
    out = tmp_path / "results"
    r = _run(["--preset", "embedded", "--tasks", "math,analysis", "--limit", "3", "--results-dir", str(out),
              "--dry-run"])
    assert r.returncode == 0, r.stderr
    assert "dry run: the study scheduler would run" in r.stdout
    assert "projected LM calls per endpoint" in r.stdout and "local-cpu:" in r.stdout
    for step in ("src.run_baseline_v2", "src.run_optimization", "src.run_optimized_eval", "src.consolidate_results"):
        assert step in r.stdout
    assert "projected LM calls" in r.stdout
    assert not out.exists()


def test_embedded_preset_completes_then_reuses_everything(embedded_config, tmp_path):
    out = tmp_path / "results"
    args = ["--preset", "embedded", "--tasks", "math,analysis", "--limit", "3", "--results-dir", str(out)]
    r = _run(args)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert (out / "golden" / "SUMMARY.md").is_file() and (out / "golden" / "report.html").is_file()
    assert "=== summary" in r.stdout and "0 failed" in r.stdout
    assert (out / "local_optimized_math_optimized_smollm2-135m.csv").is_file()
    t0 = time.time()
    again = _run(args)
    assert again.returncode == 0, again.stderr[-2000:]
    baseline_line = next(x for x in again.stdout.splitlines() if x.strip().startswith("baseline "))
    assert " 0 ran" in baseline_line and " 2 reused" in baseline_line, again.stdout
    optimize_line = next(x for x in again.stdout.splitlines() if x.strip().startswith("optimize "))
    assert " 0 ran" in optimize_line, again.stdout
    assert time.time() - t0 < 120


def test_bad_input_is_one_line(tmp_path):
    bad = tmp_path / "study.yaml"
    bad.write_text("name: x\nstudents: [smollm2-135m]\nseeds: [10, 'twenty']\n")
    cases = [(["--preset", "nope"], "no experiment preset 'nope'"),
             (["--phases", "baseline,dance"], "--phases takes"),
             (["--config", str(bad)], "field 'seeds'"),
             (["--config", str(tmp_path / "missing.yaml")], "cannot be read"),
             (["--limit", "many"], "expected a whole number")]
    for args, expected in cases:
        r = _run(args)
        assert r.returncode != 0, args
        assert expected in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr

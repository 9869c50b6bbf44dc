"""python -m src.plan as a user runs it: n per task from priors and from measured baselines, calls and cost, and
one-line errors on bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import run_cli

from src.registry import load_config
from src.results.files import write_csv
from src.results.naming import prefix_for, result_csv
from src.results.record import Record
from src.stats import power as pw

STUDY = """name: tiny
students: [smollm2-135m]
references: [gpt-4o]
tasks: [analysis, rag]
limit: 20
optimizer: bootstrap_rs
preset: quick
seeds: [10, 20]
data: builtin
"""


def _plan(workdir: Path, *args: str):
    study = workdir / "tiny.yaml"
    if not study.exists():
        study.write_text(STUDY)
    return run_cli(["src.plan", "--config", str(study), "--results-dir", str(workdir / "results"), *args],
                   cwd=workdir, timeout=300)


def _row(stdout: str, task: str) -> list[str]:
    line = next(ln for ln in stdout.splitlines() if ln.startswith(task + " "))
    return line.split()


def test_plan_from_stated_priors(workdir):
    r = _plan(workdir, "--effect", "10", "--prior-baseline", "0.6", "--prior-sd", "0.25")
    assert r.returncode == 0, r.stderr
    n_binary = pw.n_binary(0.10, pw.discordance_prior(0.6, 0.10))
    n_cont = pw.n_continuous(0.10, 0.25)
    analysis, rag = _row(r.stdout, "analysis"), _row(r.stdout, "rag")
    assert analysis[1:4] == ["binary", f"{n_binary}!", "26"]  # "!": the built-in sample's eval split is smaller
    assert rag[1:4] == ["continuous", f"{n_cont}!", "33"]
    assert "prior: baseline accuracy 0.60" in r.stdout and "prior: sd of differences 0.25" in r.stdout
    assert f"{100 * pw.mde_binary(20, pw.discordance_prior(0.6, 0.10)):.1f}" == analysis[5]
    # calls: capped at the eval split, baseline + optimized eval for the student, baseline for the reference,
    # plus the arm's own projection of optimization calls; gpt-4o is priced, the embedded model is not
    assert re.search(r"smollm2-135m\s+[\d,]+ calls\s+\$0 \(local\)", r.stdout)
    assert re.search(r"gpt-4o\s+[\d,]+ calls\s+\$\d+\.\d\d", r.stdout)
    gpt = int(re.search(r"gpt-4o\s+([\d,]+) calls", r.stdout).group(1).replace(",", ""))
    assert gpt == min(n_binary, 26) + min(n_cont, 33)


def test_plan_uses_measured_baselines(workdir):
    config = load_config()
    spec = config.model("smollm2-135m")
    path = result_csv(workdir / "results", prefix_for(spec), "baseline", "analysis", spec.key)
    path.parent.mkdir(parents=True)
    recs = [Record("x", spec.key, "analysis", "baseline", f"e{i}", "yes", "yes", float(i % 5 != 0), int(i % 5 != 0),
                   lm_calls=1, input_tokens=400, output_tokens=10) for i in range(40)]
    write_csv(path, recs)
    r = _plan(workdir, "--effect", "5")
    assert r.returncode == 0, r.stderr
    psi = pw.discordance_prior(0.8, 0.05)
    assert _row(r.stdout, "analysis")[2].rstrip("!") == str(pw.n_binary(0.05, psi))
    assert "measured baseline (n=40), errors assumed independent" in r.stdout
    # gpt-4o (priced) has no run of its own: the tokens measured on the same task stand in, and say so
    assert "analysis: 400 in / 10 out tokens per call (measured on another model's run " \
           "(local_baseline_analysis_smollm2-135m.csv))" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["--effect", "0"], "--effect must be between 0 and 100"),
    (["--effect", "five"], "--effect must be a number"),
    (["--power", "1.5"], "--power must be between 0 and 1"),
    (["--preset", "nope"], "no experiment preset 'nope'"),
])
def test_plan_bad_input_is_one_line(workdir, args, message):
    r = run_cli(["src.plan", *args], cwd=workdir, timeout=120)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr

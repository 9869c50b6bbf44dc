"""Optimization on the embedded model with tiny budgets: loadable programs, best-of-seeds, resume, eval isolation."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dspy
import pytest
from conftest import ROOT, run_cli

COMMON = ["--models", "smollm2-135m", "--tasks", "analysis", "--data", "builtin", "--preset", "quick"]


def _ids(path: Path) -> list[str]:
    with open(path, newline="") as fh:
        return [r["example_id"] for r in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def optimized(tmp_path_factory, embedded_config):
    """baseline -> MIPROv2 (2 seeds) -> optimized eval, as a user runs them."""
    out = tmp_path_factory.mktemp("opt")
    base = run_cli(["src.run_baseline_v2", *COMMON[:6], "--limit", "6", "--results-dir", str(out)])
    assert base.returncode == 0, base.stderr
    # A response cache of its own: other tests' identical calls would otherwise be free cache hits with no tokens.
    own_cache = {"DSPY_CACHEDIR": str(tmp_path_factory.mktemp("opt-dspy-cache"))}
    opt = run_cli(["src.run_optimization", *COMMON, "--seeds", "10,20", "--results-dir", str(out)], env=own_cache)
    assert opt.returncode == 0, opt.stderr[-2000:]
    ev = run_cli(["src.run_optimized_eval", *COMMON[:6], "--limit", "6", "--results-dir", str(out)])
    assert ev.returncode == 0, ev.stderr[-2000:]
    return out, opt


def test_mipro_program_is_saved_loadable_and_best_of_seeds(optimized, embedded_config):
    out, opt = optimized
    program_file = out / "optimized_programs" / "smollm2-135m_analysis_mipro_v2.json"
    side = json.loads(program_file.with_suffix(".meta.json").read_text())
    assert side["status"] == "ok" and side["teacher_is_student"] is True
    scores = {s["seed"]: s["dev_score"] for s in side["seeds"] if s["status"] == "ok"}
    assert set(scores) == {10, 20}
    best = max(scores.values())
    assert side["dev_score"] == best and scores[side["chosen_seed"]] == best
    assert side["chosen_seed"] == min(s for s, v in scores.items() if v == best)  # ties: earliest seed
    cost = side["optimization_cost"]
    assert cost["lm_calls"] > 0 and cost["cache_hits"] < cost["lm_calls"] and cost["input_tokens"] > 0
    assert "teaches itself" in opt.stderr  # no --teacher: a printed warning
    from src.optimization.programs import load_program
    from src.tasks import get_task

    program, info = load_program(get_task("analysis", embedded_config), program_file)
    assert info["sha256"] == side["program_sha256"]
    assert len(program.predictors()[0].demos) == side["n_demos_total"]


def test_optimized_rows_align_with_baseline_rows(optimized):
    out, _ = optimized
    base = _ids(out / "local_baseline_analysis_smollm2-135m.csv")
    opt = _ids(out / "local_optimized_analysis_optimized_smollm2-135m.csv")
    assert base == opt and len(base) == 6
    meta = json.loads((out / "local_optimized_analysis_optimized_smollm2-135m.meta.json").read_text())
    assert meta["program"]["file"].endswith("smollm2-135m_analysis_mipro_v2.json")
    assert meta["adapter"] == "structured"


def test_rerun_reuses_the_finished_unit(optimized):
    out, _ = optimized
    t0 = time.time()
    r = run_cli(["src.run_optimization", *COMMON, "--seeds", "10,20", "--results-dir", str(out)])
    assert r.returncode == 0 and "reused" in r.stdout, r.stdout + r.stderr
    assert time.time() - t0 < 60


def test_program_from_another_dspy_version_is_refused(optimized, tmp_path):
    out, _ = optimized
    src_file = out / "optimized_programs" / "smollm2-135m_analysis_mipro_v2.json"
    state = json.loads(src_file.read_text())
    state["metadata"]["dependency_versions"]["dspy"] = "2.6.27"
    fake_dir = tmp_path / "optimized_programs"
    fake_dir.mkdir()
    (fake_dir / src_file.name).write_text(json.dumps(state))
    r = run_cli(["src.run_optimized_eval", *COMMON[:6], "--limit", "2", "--results-dir", str(tmp_path)])
    assert r.returncode != 0
    assert "saved with DSPy 2.6.27" in r.stdout + r.stderr and "--allow-version-mismatch" in r.stdout + r.stderr


def test_bootstrap_rs_produces_a_loadable_program(embedded_config, tmp_path):
    r = run_cli(["src.run_optimization", *COMMON, "--optimizer", "bootstrap_rs", "--seeds", "10",
                 "--results-dir", str(tmp_path)])
    assert r.returncode == 0, r.stderr[-2000:]
    path = tmp_path / "optimized_programs" / "smollm2-135m_analysis_bootstrap_rs.json"
    from src.optimization.programs import load_program
    from src.tasks import get_task

    program, info = load_program(get_task("analysis", embedded_config), path)
    assert info["optimizer"] == "bootstrap_rs"


def test_killed_optimization_resumes_only_unfinished_seeds(embedded_config, tmp_path):
    args = [sys.executable, "-m", "src.run_optimization", *COMMON, "--seeds", "10,20,30", "--results-dir",
            str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seed_meta = tmp_path / "optimized_programs" / ".seeds" / "smollm2-135m_analysis_mipro_v2" / "seed10.meta.json"
    deadline = time.time() + 300
    while time.time() < deadline and not seed_meta.is_file():
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert seed_meta.is_file(), "seed 10 should finish before the kill"
    first = seed_meta.read_bytes()
    r = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "seed 10: reused" in r.stderr
    assert seed_meta.read_bytes() == first
    side = json.loads((tmp_path / "optimized_programs" / "smollm2-135m_analysis_mipro_v2.meta.json").read_text())
    assert sorted(s["seed"] for s in side["seeds"]) == [10, 20, 30]


def test_eval_split_never_reaches_the_optimizer(embedded_config, tmp_path, monkeypatch):
    """Instrument what the optimizer and the dev scorer receive; no eval example may be among them."""
    from src.backends.session import Sessions, SessionOptions
    from src.optimization import search
    from src.optimization.presets import PRESETS
    from src.optimization.search import run_opt_unit
    from src.tasks import splits
    from src.tasks import get_task
    from src.tasks.sources import resolve_source
    from src.tasks.splits import load_task_data

    task = get_task("analysis", embedded_config)
    data = load_task_data(task, resolve_source("builtin", embedded_config, announce=False))
    seen: list[str] = []
    real_compile = dspy.MIPROv2.compile

    def spy_compile(self, student, *, trainset, **kw):
        seen.extend(ex.ia_id for ex in trainset)
        return real_compile(self, student, trainset=trainset, **kw)

    real_dev = search.dev_score

    def spy_dev(program, task_, dev, session, label, *rest):
        seen.extend(ex.id for ex in dev)
        return real_dev(program, task_, dev, session, label, *rest)

    monkeypatch.setattr(dspy.MIPROv2, "compile", spy_compile)
    monkeypatch.setattr(search, "dev_score", spy_dev)
    session = Sessions(embedded_config, SessionOptions(max_tokens=128)).session("smollm2-135m")
    result = run_opt_unit("mipro_v2", task, data, session, session, PRESETS["quick"], [10], tmp_path, 8, 6, False)
    assert result.status == "ran"
    assert seen and not set(seen) & {ex.id for ex in data.eval}
    # and the guard itself refuses a leak
    with pytest.raises(RuntimeError, match="eval examples reached the optimizer"):
        splits.assert_disjoint_from_eval(task, data.eval, data.eval[:1])


@pytest.mark.parametrize("arm", ["cot_zero_shot", "gepa"])
def test_other_arms_run_and_save(arm, embedded_config, tmp_path):
    """cot_zero_shot (no search: ChainOfThought only) and GEPA (teacher as reflection model) on a tiny budget."""
    r = run_cli(["src.run_optimization", *COMMON, "--optimizer", arm, "--seeds", "10", "--results-dir",
                 str(tmp_path)])
    assert r.returncode == 0, (r.stdout + r.stderr)[-2000:]
    path = tmp_path / "optimized_programs" / f"smollm2-135m_analysis_{arm}.json"
    side = json.loads(path.with_suffix(".meta.json").read_text())
    assert side["status"] == "ok" and side["optimizer"] == arm
    if arm == "cot_zero_shot":
        assert side["module"] == "ChainOfThought" and side["seeds"][0]["seed"] == 0
    ev = run_cli(["src.run_optimized_eval", *COMMON[:6], "--optimizer", arm, "--limit", "3", "--results-dir",
                  str(tmp_path)])
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert (tmp_path / f"local_{arm}_analysis_smollm2-135m.csv").is_file()

"""The later studies (demo curves, tipping point) as units of the study graph: their study-file fields, their place
in the schedule, and - end to end on the embedded model - the same files as their separate commands, reused on a
rerun."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

MODEL, TASK = "smollm2-135m", "analysis"
STUDY = f"""name: later
students: [{MODEL}]
tasks: [{TASK}]
limit: 2
optimizer: mipro_v2
preset: quick
seeds: [10]
data: builtin
"""
LATER = "demo_curves: {max_demos: 2}\ntipping_point: {models: [%s], n: [0, 1], seeds: [10], candidates: 1}\n" % MODEL


def _study(tmp: Path, extra: str = LATER) -> Path:
    path = tmp / "study.yaml"
    path.write_text(STUDY + extra)
    return path


@pytest.mark.parametrize("extra, expected", [
    ("demo_curves: {max_demos: -1}\n", "field 'demo_curves.max_demos' must be >= 0"),
    ("demo_curves: {pairs: some}\n", "field 'demo_curves.pairs' must be one of selected, all"),
    ("demo_curves: {depth: 2}\n", "field 'demo_curves' has no key 'depth'"),
    ("demo_curves: 3\n", "field 'demo_curves' has the wrong type (int)"),
    ("tipping_point: {n: [0, 1]}\n", "field 'tipping_point.models' is missing"),
    ("tipping_point: {models: [nobody]}\n", "field 'tipping_point.models' names unknown model 'nobody'"),
    (f"tipping_point: {{models: [{MODEL}], n: [1, 1]}}\n", "field 'tipping_point.n' must be a non-empty list"),
    (f"tipping_point: {{models: [{MODEL}], seeds: ten}}\n", "field 'tipping_point.seeds' has the wrong type (str)"),
    (f"tipping_point: {{models: [{MODEL}], preset: huge}}\n", "field 'tipping_point.preset' must be one of"),
    (f"tipping_point: {{models: [{MODEL}], tasks: [chess]}}\n", "field 'tipping_point.tasks' unknown task 'chess'"),
    ("tipping_point: true\n", "field 'tipping_point' has the wrong type (bool)"),
])
def test_bad_later_study_fields_are_one_line(tmp_path, extra, expected):
    r = run_cli(["src.experiment", "--config", str(_study(tmp_path, extra)), "--results-dir", str(tmp_path / "r"),
                 "--dry-run"], cwd=tmp_path)
    assert r.returncode != 0
    assert expected in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_tipping_point_phase_without_its_field_is_one_line(tmp_path):
    r = run_cli(["src.experiment", "--config", str(_study(tmp_path, "")), "--phases", "baseline,tipping_point",
                 "--dry-run"], cwd=tmp_path)
    assert r.returncode != 0 and "configures no tipping point" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def _units(stdout: str) -> dict[str, str]:
    """Unit id -> its schedule line, from a dry run's listing."""
    lines = stdout.split("dry run: the study scheduler", 1)[1].split("projected LM calls per endpoint")[0]
    return {x.strip().split("  ")[0]: x.strip() for x in lines.splitlines() if x.startswith("    ")}


def test_dry_run_lists_the_later_studies_with_their_dependencies(tmp_path):
    out = tmp_path / "results"
    r = run_cli(["src.experiment", "--config", str(_study(tmp_path)), "--results-dir", str(out), "--dry-run"],
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    units = _units(r.stdout)
    base = f"{MODEL}/{TASK}"
    demo = units[f"demo curve {base}"]  # the optimized program, after its baseline and optimized eval
    assert "calls local-cpu: ~8" in demo  # (max_demos 2 + baseline + n = 0) conditions x 2 examples
    assert f"after select {base}, baseline {base}, eval {base}" in demo
    cells = [u for u in units if u.startswith("tipping ")]
    assert cells == [f"tipping {base} n=0 seed=None", f"tipping {base} n=1 seed=10"]
    assert all("(after" not in units[c] for c in cells)  # nothing from the other stages
    assert "calls local-cpu: ~2" in units[cells[0]]  # n = 0: the unoptimized program on the 2 eval examples
    assert units["tipping_point analysis"].endswith(f"(after {', '.join(cells)})")
    assert units["consolidate"].endswith("(after every other unit)")
    # the stage plan names the separate commands, with the study's settings
    assert "python -m src.demo_curve_eval --tasks analysis" in r.stdout and "--max-demos 2" in r.stdout
    assert f"python -m src.tipping_point.runner --models {MODEL} --tasks {TASK}" in r.stdout
    assert "--n 0,1 --seeds 10 --preset quick --limit 2 --candidates 1" in r.stdout
    assert not out.exists()
    # without the fields, the default stages are the four of before
    plain = run_cli(["src.experiment", "--config", str(_study(tmp_path, "")), "--dry-run"], cwd=tmp_path)
    assert plain.returncode == 0 and "demo curve" not in plain.stdout and "tipping" not in plain.stdout
    # a later study asked for by name runs alone, without the stages before it
    only = run_cli(["src.experiment", "--config", str(_study(tmp_path)), "--phases", "demo_curves", "--dry-run"],
                   cwd=tmp_path)
    assert only.returncode == 0, only.stderr[-2000:]
    assert list(_units(only.stdout)) == [f"demo curve {base}"] and "(after" not in only.stdout
    # every attempt of --repeats is a request: the baseline's projection and the later studies' scale with k
    thrice = run_cli(["src.experiment", "--config", str(_study(tmp_path)), "--repeats", "3", "--dry-run"],
                     cwd=tmp_path)
    assert thrice.returncode == 0, thrice.stderr[-2000:]
    assert "calls local-cpu: ~2" in units[f"baseline {base}"]
    assert "calls local-cpu: ~6" in _units(thrice.stdout)[f"baseline {base}"]
    assert "calls local-cpu: ~24" in _units(thrice.stdout)[f"demo curve {base}"]


# ---- end to end on the embedded model ------------------------------------------------------------------------------

SCORES = {"demo_curves/demo_curve_results.csv": (("model", "task", "condition", "n_demos"),
                                                 ("score", "ci_low", "ci_high", "n_examples", "n_errors",
                                                  "phase1_delta", "repeats")),
          "demo_curves/decomposition.csv": (("model", "task"), ("k", "baseline", "score_n0", "score_nk",
                                                                "instruction_effect", "demo_effect", "best_n")),
          # not optimization_calls: the meter counts every attempt, and a request re-sent after a transient failure
          # of the busy server, or answered from the cache in one run only, counts differently (as cache_hit does)
          "tipping_point/curve.csv": (("model", "task", "n"), ("seeds", "score", "ci_low", "ci_high", "delta", "p",
                                                               "verdict", "n_examples", "p_holm")),
          "tipping_point/summary.csv": (("model", "task"), ("regime", "baseline", "best_n", "best_score",
                                                            "n_values", "seeds", "n_examples"))}


def _keyed(path: Path, key: tuple[str, ...], columns: tuple[str, ...]) -> dict[tuple, tuple]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {tuple(r[k] for k in key): tuple(r[c] for c in columns) for r in csv.DictReader(fh)}


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for folder in ("demo_curves", "tipping_point") if (root / folder).is_dir()
                  for p in (root / folder).rglob("*") if p.is_file() and p.suffix in (".csv", ".json"))


@pytest.mark.slow
def test_study_leaves_the_files_of_the_separate_commands_and_reuses_them(embedded_config, tmp_path):
    """The optimization is replaced by a saved program with 2 demos (as tests/test_phases.py does): a quick-preset
    MIPROv2 program of the 135M model keeps at most one demo per predictor, which leaves nothing to curve, and the
    optimize stage alone would take minutes. The DSPy cache is shared by both runs (the conftest's): what is
    compared is which units run, under which names, and what is written from them."""
    from test_phases import _save_program_with_demos

    study, ran, cmds = _study(tmp_path), tmp_path / "study", tmp_path / "commands"
    _save_program_with_demos(ran, embedded_config, 2)
    common = ["--config", str(study), "--results-dir", str(ran)]
    first = run_cli(["src.experiment", *common, "--phases", "baseline,eval,consolidate"], cwd=tmp_path)
    assert first.returncode == 0, (first.stdout + first.stderr)[-3000:]
    shutil.copytree(ran, cmds)

    phases = ["--phases", "baseline,eval,demo_curves,tipping_point,consolidate"]
    r = run_cli(["src.experiment", *common, *phases], cwd=tmp_path)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    for args in (["src.demo_curve_eval", "--tasks", TASK, "--max-demos", "2"],
                 ["src.tipping_point.runner", "--models", MODEL, "--tasks", TASK, "--n", "0,1", "--seeds", "10",
                  "--candidates", "1"]):
        c = run_cli([*args, "--data", "builtin", "--limit", "2", "--results-dir", str(cmds)], cwd=tmp_path)
        assert c.returncode == 0, (c.stdout + c.stderr)[-3000:]

    assert _files(ran) == _files(cmds)
    assert "tipping_point/checkpoints/smollm2-135m_analysis_n1_seed10.json" in _files(ran)
    for name, (key, columns) in SCORES.items():
        study_rows = _keyed(ran / name, key, columns)
        assert study_rows and study_rows == _keyed(cmds / name, key, columns), name
    assert len(_keyed(ran / "demo_curves/demo_curve_results.csv", *SCORES["demo_curves/demo_curve_results.csv"])) == 4
    assert "Demo-count curves" in (ran / "golden" / "SUMMARY.md").read_text()  # consolidation ran after them

    again = run_cli(["src.experiment", *common, *phases], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    for stage, units in (("demo_curves", 1), ("tipping_point", 2)):
        line = next(x for x in again.stdout.splitlines() if x.strip().startswith(stage + " "))
        assert " 0 ran" in line and f" {units} reused" in line and " 0 failed" in line, again.stdout

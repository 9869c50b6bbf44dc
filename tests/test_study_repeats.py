"""--repeats k in the demo-count curves and the tipping point, on the embedded model: every attempt recorded by the
stage runners' mechanism (EvalUnit.repeats), a larger k extending finished units (attempt 0 kept as it was; a
tipping-point cell evaluates its stored program again, never recompiles it), and the curves built on per-example
means with a cluster-bootstrap interval and each point's run-to-run spread — every figure recomputed here from the
unit CSVs with the statistics' own reference functions."""

from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_cli
from test_phases import _save_program_with_demos

from src.stats import core

MODEL, TASK = "smollm2-135m", "analysis"


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _attempts(path: Path) -> dict[str, dict[int, float]]:
    """example id -> {repeat: score}, in the file's order."""
    out: dict[str, dict[int, float]] = {}
    for r in _rows(path):
        out.setdefault(r["example_id"], {})[int(r["repeat"])] = float(r["score"])
    return out


def _figures(path: Path, k: int) -> dict:
    """What a point must report, from its unit CSV: the mean of per-example means and their bootstrap interval
    (resampling examples with all their attempts), the corpus score of each repeat index, their sd, agreement."""
    att = _attempts(path)
    assert all(sorted(a) == list(range(k)) for a in att.values()), "every example answered k times"
    means = [sum(a.values()) / k for a in att.values()]
    runs = [sum(a[r] for a in att.values()) / len(att) for r in range(k)]
    return {"ids": list(att), "means": means, "score": sum(means) / len(means),
            "ci": core.bootstrap_ci(means, n_boot=2000, seed=0), "runs": runs, "run_sd": statistics.stdev(runs),
            "agreement": sum(len(set(a.values())) == 1 for a in att.values()) / len(att)}


def _check_point(row: dict, fig: dict, k: int) -> None:
    assert row["repeats"] == str(k)
    assert float(row["score"]) == pytest.approx(fig["score"], abs=1e-6)
    assert (float(row["ci_low"]), float(row["ci_high"])) == pytest.approx(fig["ci"], abs=1e-6)
    assert float(row["run_sd"]) == pytest.approx(fig["run_sd"], abs=1e-6)
    assert float(row["agreement"]) == pytest.approx(fig["agreement"], abs=1e-6)


def test_demo_curves_with_repeats_extend_units_and_report_spread(embedded_config, tmp_path):
    _save_program_with_demos(tmp_path, embedded_config, 1)  # conditions: baseline, n = 0 and n = 1 demos
    args = ["src.demo_curve_eval", "--models", MODEL, "--tasks", TASK, "--data", "builtin", "--limit", "6",
            "--results-dir", str(tmp_path)]
    r = run_cli(args)
    assert r.returncode == 0, r.stderr[-2000:]
    units = tmp_path / "demo_curves" / "units"
    names = {"baseline": f"local_baseline_{TASK}_{MODEL}.csv", "0": f"local_demo-n0_{TASK}_{MODEL}.csv",
             "1": f"local_demo-n1_{TASK}_{MODEL}.csv"}
    first = {c: _rows(units / n) for c, n in names.items()}
    assert all(len(rows) == 6 for rows in first.values())

    r = run_cli(args + ["--repeats", "2"])
    assert r.returncode == 0, r.stderr[-2000:]
    figs = {}
    for cond, name in names.items():
        rows = _rows(units / name)
        # a larger k extends the finished unit: attempt 0 is the record it was (its latency too: not asked again)
        assert [x for x in rows if x["repeat"] == "0"] == first[cond]
        figs[cond] = _figures(units / name, 2)
    curve = {("baseline" if x["condition"] == "baseline" else x["n_demos"]): x
             for x in _rows(tmp_path / "demo_curves" / "demo_curve_results.csv")}
    assert set(curve) == set(names)
    for cond, fig in figs.items():
        _check_point(curve[cond], fig, 2)
        assert [float(x) for x in curve[cond]["run_scores"].split()] == pytest.approx(fig["runs"], abs=1e-6)
        assert curve[cond]["n_examples"] == "6"
    (dec,) = _rows(tmp_path / "demo_curves" / "decomposition.csv")
    assert dec["repeats"] == "2" and dec["n_examples"] == "6"
    base, n0, n1 = figs["baseline"]["means"], figs["0"]["means"], figs["1"]["means"]
    assert figs["baseline"]["ids"] == figs["0"]["ids"] == figs["1"]["ids"]
    # effects paired on per-example means, tested by the sign-flip permutation test (not McNemar on fractions)
    assert float(dec["instruction_effect"]) == pytest.approx(sum(n0) / 6 - sum(base) / 6, abs=1e-6)
    assert float(dec["demo_effect"]) == pytest.approx(sum(n1) / 6 - sum(n0) / 6, abs=1e-6)
    p, _ = core.paired_permutation_test(n0, n1, n_perm=10000, seed=0)
    assert float(dec["demo_p"]) == pytest.approx(p, abs=1e-6)
    lo, hi = core.paired_bootstrap_delta_ci(n0, n1, n_boot=2000, seed=0)
    assert (float(dec["demo_ci_low"]), float(dec["demo_ci_high"])) == pytest.approx((lo, hi), abs=1e-6)
    assert "run-to-run sd" in r.stderr


def _tipping_args(results: Path) -> list[str]:
    return ["--models", MODEL, "--tasks", TASK, "--n", "0,1", "--seeds", "10", "--limit", "5", "--candidates", "1",
            "--data", "builtin", "--results-dir", str(results)]


def test_tipping_point_with_repeats_extends_cells_without_recompiling(embedded_config, tmp_path, monkeypatch):
    from src.results.schema import TippingCheckpoint

    r = run_cli(["src.tipping_point.runner", *_tipping_args(tmp_path)])
    assert r.returncode == 0, r.stderr[-2000:]
    root = tmp_path / "tipping_point"
    ckpts = {p.name: TippingCheckpoint.read(p) for p in (root / "checkpoints").glob("*.json")}
    assert set(ckpts) == {f"{MODEL}_{TASK}_baseline.json", f"{MODEL}_{TASK}_n1_seed10.json"}
    assert all(c.repeats == 1 for c in ckpts.values())
    cell = ckpts[f"{MODEL}_{TASK}_n1_seed10.json"]
    assert cell.program_state and sum(p["n_demos"] for p in cell.predictors.values()) <= 1
    first = {name: _rows(Path(c.csv)) for name, c in ckpts.items()}
    (row,) = [x for x in _rows(root / "curve.csv") if x["n"] == "1"]
    assert (row["repeats"], row["run_sd"], row["agreement"]) == ("1", "", "")

    # --repeats 2 in this process with compiling forbidden: a finished cell evaluates its stored program again
    import src.studies.tipping_point.runner as runner
    from src.commands import tipping_point

    def no_compile(*a, **kw):
        raise AssertionError("a checkpointed cell must not be compiled again")

    monkeypatch.setattr(runner, "compile_n", no_compile)
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", ["src.tipping_point.runner", *_tipping_args(tmp_path), "--repeats", "2"])
    assert tipping_point.main() == 0
    again = {p.name: TippingCheckpoint.read(p) for p in (root / "checkpoints").glob("*.json")}
    assert all(c.repeats == 2 for c in again.values())
    assert again[f"{MODEL}_{TASK}_n1_seed10.json"].program_state == cell.program_state
    assert again[f"{MODEL}_{TASK}_n1_seed10.json"].compile_cost == cell.compile_cost
    figs = {}
    for name, c in again.items():
        rows = _rows(Path(c.csv))
        assert [x for x in rows if x["repeat"] == "0"] == first[name]  # attempt 0 kept, not asked again
        figs[c.n] = _figures(Path(c.csv), 2)

    curve = {x["n"]: x for x in _rows(root / "curve.csv")}
    for n, fig in figs.items():
        _check_point(curve[str(n)], fig, 2)
    # the lift at n = 1: paired on per-example means, permutation-tested
    base, lifted = figs[0]["means"], figs[1]["means"]
    assert float(curve["1"]["delta"]) == pytest.approx(sum(lifted) / 5 - sum(base) / 5, abs=1e-6)
    p, _ = core.paired_permutation_test(base, lifted, n_perm=10000, seed=0)
    assert float(curve["1"]["p"]) == pytest.approx(p, abs=1e-6)
    (summary,) = _rows(root / "summary.csv")
    assert summary["repeats"] == "2"
    assert float(summary["baseline"]) == pytest.approx(figs[0]["score"], abs=1e-6)
    assert (float(summary["baseline_ci_low"]), float(summary["baseline_ci_high"])) == pytest.approx(figs[0]["ci"],
                                                                                                      abs=1e-6)


def test_the_report_shows_each_points_spread_only_for_files_with_repeats(tmp_path):
    """The consolidated report's study sections: a curve file with repeats gets the spread columns; an older file
    (no such columns) or one at k = 1 renders as it always did."""
    from src.consolidation.studies import SPREAD_HEADERS, StudyFiles
    from src.report import Table
    from src.studies.demo_curves import CURVE_COLUMNS
    from src.studies.tipping_point.analyzer import CURVE_COLUMNS as TIP_COLUMNS

    def write(path: Path, columns: list[str], rows: list[list]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as fh:
            csv.writer(fh).writerows([columns, *rows])

    demo = tmp_path / "demo_curves" / "demo_curve_results.csv"
    tip = tmp_path / "tipping_point" / "curve.csv"
    write(demo, CURVE_COLUMNS, [["m", "analysis", "baseline", 0, 0.5, 0.3, 0.7, 6, 0, 1.0, "", 2, 0.04, 0.5,
                                 "0.46 0.54"]])
    write(tip, TIP_COLUMNS, [["m", "analysis", 0, 1, 0.5, 0.3, 0.7, "", "", "", "", "", 6, 0, "", "", 3, 0.1, 2 / 3]])
    notes: list[str] = []
    secs = StudyFiles.load(tmp_path, notes).sections()
    tables = [b for s in secs for b in s.blocks if isinstance(b, Table)]
    assert len(tables) == 2 and all(t.headers[-3:] == SPREAD_HEADERS for t in tables)
    assert tables[0].rows[0][-3:] == ["2", "4.0", "50.0%"] and tables[1].rows[0][-3:] == ["3", "10.0", "66.7%"]
    assert "pools the seeds" in tables[1].caption and "per-example means" in tables[0].caption

    old = CURVE_COLUMNS[:CURVE_COLUMNS.index("repeats")]  # a file written before repeats existed
    write(demo, old, [["m", "analysis", "baseline", 0, 0.5, 0.3, 0.7, 6, 0, 1.0, ""]])
    write(tip, TIP_COLUMNS, [["m", "analysis", 0, 1, 0.5, 0.3, 0.7, "", "", "", "", "", 6, 0, "", "", 1, "", ""]])
    tables = [b for s in StudyFiles.load(tmp_path, notes).sections() for b in s.blocks if isinstance(b, Table)]
    assert all("repeats" not in t.headers for t in tables) and not notes

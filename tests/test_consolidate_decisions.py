"""Issue 11 in consolidation: every delta's minimum detectable effect, the correction family of every table with
p-values, and the scoreboard's best local model chosen on one half of the examples and tested on the other."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from test_consolidate import _analysis, _meta, build_fixture, read_rows, run_inprocess

from src.results.files import write_csv, write_json
from src.results.naming import result_csv
from src.stats import power
from src.stats.selection import selection_split


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    rd = build_fixture(tmp_path_factory.mktemp("fx"))
    run_inprocess(rd)
    return rd / "golden"


def test_every_delta_has_its_mde(golden):
    d = {(r["model"], r["task"], r["arm"]): r for r in read_rows(golden / "deltas.csv")}
    # qwen3_4b analysis: 10 of 10 pairs discordant -> the exact-McNemar MDE at n=10, discordance 1
    q = d[("qwen3_4b", "analysis", "optimized")]
    assert float(q["mde"]) == pytest.approx(power.mde_binary(10, 1.0))
    assert q["mde_basis"] == "exact McNemar, n=10, observed discordance 1.000"
    # llama3.2 analysis: 3 discordant pairs of 10 -> no effect reaches 80% power (written 'inf', shown as such)
    lq = d[("llama3.2", "analysis", "optimized")]
    assert math.isinf(power.mde_binary(10, 0.3)) and lq["mde"] == "inf"
    md = (golden / "SUMMARY.md").read_text()
    assert "| llama3.2 | analysis | 10 |" in md and "none reachable |" in md
    # extraction (micro-F1, continuous): paired t on the per-example F1 differences, flagged as approximate
    le = d[("llama3.2", "extraction", "optimized")]
    diffs = [0.5] * 3 + [0.0] * 3
    mean = sum(diffs) / 6
    sd = math.sqrt(sum((x - mean) ** 2 for x in diffs) / 5)
    assert float(le["mde"]) == pytest.approx(power.mde_continuous(6, sd), rel=1e-6)
    assert "paired t, n=6" in le["mde_basis"] and "approximate" in le["mde_basis"]
    # every row has one or says why not: qwen3_4b's extraction differences are all +1 (no spread to estimate from)
    assert all(r["mde"] != "" or "unknown" in r["mde_basis"] for r in d.values())
    assert d[("qwen3_4b", "extraction", "optimized")]["mde_basis"] == "no spread in the differences: sd unknown"
    assert d[("llama3.2", "analysis", "cot_zero_shot")]["mde"] != ""
    # the sibling matrix: delta_scores.csv keeps its shape, delta_mde.csv mirrors it cell for cell in points
    scores = (golden / "delta_scores.csv").read_text().splitlines()
    mde = read_rows(golden / "delta_mde.csv")
    assert scores[0] == "model,extraction,analysis" and len(mde) == len(scores) - 1
    by_model = {r["model"]: r for r in mde}
    assert float(by_model["qwen3_4b"]["analysis"]) == pytest.approx(round(100 * power.mde_binary(10, 1.0), 1))


def test_every_table_names_its_correction_family(golden):
    md = (golden / "SUMMARY.md").read_text()
    d = {(r["model"], r["task"], r["arm"]): r for r in read_rows(golden / "deltas.csv")}
    assert d[("qwen3_4b", "analysis", "optimized")]["family"] == "Holm across the 6 optimized − baseline deltas"
    assert d[("llama3.2", "analysis", "cot_zero_shot")]["family"].startswith("uncorrected")
    sections = {s.split("\n", 1)[0]: s for s in md.split("\n## ")[1:]}
    for name in ("Delta (optimized − baseline)", "Other arms", "Arbitrage scoreboard", "Variance analysis (phase 2)",
                 "Demo-count curves (phase 3)", "Tipping point (phase 5)"):
        assert "Correction family: " in sections[name] or "correction family: " in sections[name], name
    assert "Correction family: Holm across the 6 optimized − baseline deltas" in sections["Delta (optimized − baseline)"]
    assert "Correction family: Holm across the 4 scoreboard comparisons" in sections["Arbitrage scoreboard"]
    assert "MDE (pts)" in sections["Delta (optimized − baseline)"] and "MDE (pts)" in sections["Other arms"]
    # the HTML report is rendered from the same document: the MDE column and the family are there too
    html = (golden / "report.html").read_text()
    assert "MDE (pts)" in html and "Holm across the 4 scoreboard comparisons" in html


def test_best_local_model_is_chosen_on_one_half_and_tested_on_the_other(tmp_path: Path):
    """Winner's curse: "lucky" is perfect on the selection half and wrong on the test half (50% overall);
    "steady" is 3/5 on the selection half and 5/5 on the test half (80% overall). The choice is made on the selection
    half only — "lucky" — and its row reports what it scores where it was not chosen: 0%."""
    ids = [f"a{i}" for i in range(10)]
    sel, test = selection_split(ids)
    idx = {e: i for i, e in enumerate(ids)}
    lucky = {idx[e] for e in sel}
    steady = {idx[e] for e in sel[:3]} | {idx[e] for e in test}
    rd = tmp_path / "results"
    units = [("local", "optimized", _analysis("llama3.2", "optimized", lucky)),
             ("local", "optimized", _analysis("qwen3_4b", "optimized", steady)),
             ("api", "baseline", _analysis("gpt-4o", "baseline", set(range(10)))),
             ("api", "optimized", _analysis("gpt-4o", "optimized", set(range(10))))]
    for kind, phase, recs in units:
        path = result_csv(rd, kind, phase, recs[0].task, recs[0].model)
        write_csv(path, recs)
        write_json(path.with_suffix(".meta.json"), _meta(recs, kind, phase))
    run_inprocess(rd)
    sb = {r["api_phase"]: r for r in read_rows(rd / "golden" / "scoreboard.csv")}
    row = sb["optimized"]
    assert row["best_local_optimized"] == "llama3.2"  # chosen on the selection half, not on all 10 examples
    assert row["n_shared"] == str(len(test)) and float(row["local_score"]) == 0.0
    assert float(row["delta"]) == pytest.approx(-1.0)
    assert row["chosen_on"] == (f"best of 2 on a seeded half (n={len(sel)}, seed 2025); tested on the other half "
                                f"(n={len(test)})")


def test_a_single_local_candidate_uses_every_example(tmp_path: Path):
    rd = tmp_path / "results"
    units = [("local", "optimized", _analysis("llama3.2", "optimized", set(range(7)))),
             ("api", "optimized", _analysis("gpt-4o", "optimized", set(range(9))))]
    for kind, phase, recs in units:
        path = result_csv(rd, kind, phase, recs[0].task, recs[0].model)
        write_csv(path, recs)
        write_json(path.with_suffix(".meta.json"), _meta(recs, kind, phase))
    run_inprocess(rd)
    row = {r["api_phase"]: r for r in read_rows(rd / "golden" / "scoreboard.csv")}["optimized"]
    assert row["n_shared"] == "10" and row["chosen_on"] == "only candidate (all examples)"
    assert float(row["delta"]) == pytest.approx(-0.2)

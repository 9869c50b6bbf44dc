"""The consolidator on a small hand-computed fixture results folder (built here, in tmp_path).

Fixture: 2 local models (llama3.2, qwen3_4b — a reasoning model) + 1 API model (gpt-4o), 2 tasks — analysis
(binary, 10 examples) and extraction (continuous: the task's corpus micro-F1 from per-example tp/fp/fn in extras,
6 examples) — with
baseline + optimized CSVs and sidecars, one extra arm (cot_zero_shot), two optimization sidecars, a demo-curve file
and a tipping-point table. Expected numbers are worked out by hand in the comments.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.registry import load_config
from src.commands.consolidate import Options, consolidate
from src.results.files import write_csv, write_json
from src.results.naming import result_csv
from src.results.record import Record

LOCAL_RATE = 0.36  # $/h of local wall time used throughout


# ---- fixture builder -----------------------------------------------------------------------------------------------

def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


def _rec(model: str, task: str, phase: str, eid: str, score: float, *, pf: int = 0, error: str = "",
         latency: float = 1000.0, tin: int = 0, tout: int = 0, think: int = 0, cost: float = 0.0, cache: int = 0,
         extras: dict[str, Any] | None = None, gt: str = "") -> Record:
    return Record(f"{phase}-{model}-{task}", model, task, phase, eid, f"pred-{eid}-{score}", gt or f"gold-{eid}",
                  score, int(score >= 1.0), pf, error, latency, tin, tout, think, 1, cost, cache,
                  json.dumps(extras or {}), "2026-01-01T00:00:00Z")


def _analysis(model: str, phase: str, correct: set[int], **kw: Any) -> list[Record]:
    special = kw.pop("special", {})
    out = []
    for i in range(10):
        opts = dict(kw, **special.get(i, {}))
        out.append(_rec(model, "analysis", phase, f"a{i}", 1.0 if i in correct else 0.0,
                        gt="yes" if i % 2 else "no", **opts))
    return out


def _extraction(model: str, phase: str, counts: list[tuple[int, int, int]], **kw: Any) -> list[Record]:
    return [_rec(model, "extraction", phase, f"e{i}", _f1(*c), extras={"tp": c[0], "fp": c[1], "fn": c[2]}, **kw)
            for i, c in enumerate(counts)]


def _meta(records: list[Record], kind: str, phase: str, *, dspy: str = "3.4.1", smoke: bool = False,
          concurrency: int = 2, source: str = "hub") -> dict[str, Any]:
    r0 = records[0]
    program: dict[str, Any] = {"sha": "abc123"}
    if phase == "optimized":
        program.update(kind="optimized", file=f"results/optimized_programs/{r0.model}_{r0.task}_mipro_v2.json",
                       sha256="f" * 64, saved_dspy=dspy, version_mismatch=False, optimizer="mipro_v2")
    return {
        "status": "complete", "experiment_id": r0.experiment_id,
        "unit": {"phase": phase, "model": r0.model, "provider": "ollama" if kind == "local" else "openai",
                 "model_id": r0.model, "task": r0.task, "adapter": "chat", "program_sha": "abc123",
                 "data_source": source, "eval_fingerprint": f"fp-{r0.task}", "dspy": dspy, "seed": None},
        "smoke_data": smoke, "model": {"key": r0.model, "kind": kind}, "concurrency": concurrency,
        "data": {"source": source, "smoke_data": smoke, "eval_fingerprint": f"fp-{r0.task}"},
        "examples": {"n": len(records), "fingerprint": f"ex-{r0.task}"}, "program": program,
        "summary": {}, "wall_s": 1.0, "run": {"versions": {"dspy": dspy}},
    }


def build_fixture(root: Path, *, extras: bool = True) -> Path:
    """Write the fixture results folder under root and return it."""
    rd = root / "results"
    rd.mkdir(parents=True)
    units: list[tuple[str, str, list[Record]]] = []  # (kind, phase, records)
    # analysis (binary). gpt-4o: baseline 8/10 (a8, a9 served from cache), optimized 9/10 (gains a8) -> McNemar 0/1.
    pricey = {i: {"cost": 0.00035} for i in range(2, 8)}  # a0, a1 cost 0 -> recomputed 100*2.5e-6 + 10*1e-5
    pricey.update({8: {"cache": 1, "tin": 0, "tout": 0, "latency": 5.0}, 9: {"cache": 1, "tin": 0, "tout": 0,
                                                                             "latency": 5.0}})
    for i in range(8):
        pricey.setdefault(i, {})["latency"] = 100.0 * (i + 1)  # non-cached latencies 100..800 ms
    units.append(("api", "baseline", _analysis("gpt-4o", "baseline", set(range(8)), tin=100, tout=10,
                                               special=pricey)))
    units.append(("api", "optimized", _analysis("gpt-4o", "optimized", set(range(9)), tin=300, tout=10,
                                                cost=0.00085, latency=600.0)))
    # llama3.2: baseline 6/10 with 2 parse failures and 1 error; optimized 7/10 (loses a0, gains a6, a7).
    units.append(("local", "baseline", _analysis("llama3.2", "baseline", set(range(6)), tin=150, tout=5,
                                                 latency=2000.0, special={6: {"pf": 1}, 7: {"pf": 1},
                                                                          8: {"error": "timeout"}})))
    units.append(("local", "optimized", _analysis("llama3.2", "optimized", set(range(1, 8)), tin=400, tout=5,
                                                  latency=2000.0)))
    # qwen3_4b (reasoning): 0/10 -> 10/10, McNemar b=0, c=10: p = 2/1024.
    units.append(("local", "baseline", _analysis("qwen3_4b", "baseline", set(), tin=150, tout=80, think=50,
                                                 latency=3000.0)))
    units.append(("local", "optimized", _analysis("qwen3_4b", "optimized", set(range(10)), tin=400, tout=80,
                                                  think=50, latency=1000.0)))
    # extraction (micro-F1). gpt-4o: baseline 5x(2,0,0) + (1,1,1) -> 22/24; optimized all (2,0,0) -> 1.
    units.append(("api", "baseline", _extraction("gpt-4o", "baseline", [(2, 0, 0)] * 5 + [(1, 1, 1)], tin=200,
                                                 tout=20, cost=0.0007, latency=700.0)))
    units.append(("api", "optimized", _extraction("gpt-4o", "optimized", [(2, 0, 0)] * 6, tin=400, tout=20,
                                                  cost=0.0012, latency=700.0)))
    # llama3.2: (1,1,1)x6 -> 0.5; optimized 3x(2,0,0) + 3x(1,1,1) -> 18/24 = 0.75.
    units.append(("local", "baseline", _extraction("llama3.2", "baseline", [(1, 1, 1)] * 6, latency=2000.0)))
    units.append(("local", "optimized", _extraction("llama3.2", "optimized", [(2, 0, 0)] * 3 + [(1, 1, 1)] * 3,
                                                    latency=2000.0)))
    # qwen3_4b: (0,2,2)x6 -> 0; optimized (2,0,0)x6 -> 1.
    units.append(("local", "baseline", _extraction("qwen3_4b", "baseline", [(0, 2, 2)] * 6, think=50, tout=80,
                                                   latency=3000.0)))
    units.append(("local", "optimized", _extraction("qwen3_4b", "optimized", [(2, 0, 0)] * 6, think=50, tout=80,
                                                    latency=1000.0)))
    if extras:  # an extra arm, which must be reported but never crash anything
        units.append(("local", "cot_zero_shot", _analysis("llama3.2", "cot_zero_shot", set(range(5)),
                                                          latency=2500.0)))
    for kind, phase, recs in units:
        path = result_csv(rd, kind, phase, recs[0].task, recs[0].model)
        write_csv(path, recs)
        write_json(path.with_suffix(".meta.json"), _meta(recs, kind, phase))
    op = rd / "optimized_programs"
    # shaped like src/optimize.py's sidecars; the budget allows (1 bootstrapped + 3 labeled) x 1 predictor = 4 demos
    write_json(op / "qwen3_4b_analysis_mipro_v2.meta.json", {
        "model": "qwen3_4b", "task": "analysis", "optimizer": "mipro_v2", "teacher": "gpt-4o", "preset": "quick",
        "teacher_is_student": False, "status": "ok", "baseline_dev_score": 0.1, "program_sha256": "f" * 64,
        "budgets": {"mipro": {"max_bootstrapped_demos": 1, "max_labeled_demos": 3}},
        "seeds": [{"seed": 10, "status": "ok", "dev_score": 0.9, "n_demos": 4, "cost_usd": 0.2},
                  {"seed": 20, "status": "ok", "dev_score": 0.85, "n_demos": 0, "cost_usd": 0.2},
                  {"seed": 30, "status": "failed", "error": "boom"}],
        "chosen_seed": 10, "dev_score": 0.9, "predictors": {"predict": {"n_demos": 4, "instructions": "..."}},
        "n_demos_total": 4,
        "optimization_cost": {"lm_calls": 500, "input_tokens": 1, "output_tokens": 1, "cost_usd": 0.40,
                              "wall_s": 3600.0},
    })
    write_json(op / "llama3.2_extraction_mipro_v2.meta.json", {  # a sparse one: read defensively
        "model": "llama3.2", "task": "extraction", "optimizer": "mipro_v2", "n_demos_total": 0,
        "optimization_cost": {"cost_usd": 0.1, "wall_s": 1800.0},
    })
    if extras:
        (rd / "demo_curves").mkdir()
        with open(rd / "demo_curves" / "demo_curve_results.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["model", "task", "condition", "n_demos", "score", "ci_low", "ci_high", "n_examples",
                        "n_errors", "elapsed_s", "phase1_delta"])
            for model in ("llama3.2", "qwen3_4b"):
                for cond, shift in (("bootstrapped", 0.0), ("labeled", -0.05)):
                    for n, s in ((0, 0.5), (2, 0.62), (4, 0.7), (8, 0.66)):
                        w.writerow([model, "analysis", cond, n, s + shift, s + shift - 0.1, s + shift + 0.1, 50, 0,
                                    12.5, 0.1])
        (rd / "tipping_point").mkdir()
        with open(rd / "tipping_point" / "summary.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["model", "task", "regime", "baseline", "best_n", "smallest_significant_n"])
            w.writerow(["llama3.2", "analysis", "learnable", "0.60", "4", "4"])
            w.writerow(["qwen3_4b", "analysis", "too_hard", "0.00", "8", ""])
        with open(rd / "demo_curves" / "decomposition.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["model", "task", "k", "baseline", "score_n0", "score_nk", "instruction_effect",
                        "instruction_ci_low", "instruction_ci_high", "instruction_p", "demo_effect", "demo_ci_low",
                        "demo_ci_high", "demo_p", "best_n", "best_score", "n_examples"])
            w.writerow(["llama3.2", "analysis", 8, 0.4, 0.5, 0.66, 0.1, -0.05, 0.25, 0.5, 0.16, 0.02, 0.3, 0.031,
                        4, 0.7, 50])
        with open(rd / "tipping_point" / "curve.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["model", "task", "n", "seeds", "score", "ci_low", "ci_high", "delta", "delta_ci_low",
                        "delta_ci_high", "p", "verdict", "n_examples", "optimization_calls"])
            w.writerow(["llama3.2", "analysis", 0, 1, 0.6, 0.45, 0.73, "", "", "", "", "", 50, 0])
            w.writerow(["llama3.2", "analysis", 4, 3, 0.74, 0.6, 0.86, 0.14, 0.04, 0.24, 0.008, "improved", 50, 90])
    return rd


def run_inprocess(rd: Path, out: Path | None = None, **kw: Any):
    config = load_config(ROOT)
    opts = Options(rd, out or rd / "golden", kw.pop("strict", False), kw.pop("rate", LOCAL_RATE),
                   kw.pop("n_boot", 1000), 0)
    return consolidate(opts, config, **kw)  # the real task registry: analysis accuracy, extraction micro-F1


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "src.consolidate_results", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    rd = build_fixture(tmp_path_factory.mktemp("fx"))
    res = run_inprocess(rd)
    return rd / "golden", res


# ---- matrices ------------------------------------------------------------------------------------------------------

def test_matrices_exact(golden):
    out, _ = golden
    # rows: local models then API (registry order); columns: tasks in registry order (extraction before analysis)
    assert (out / "summary_scores.csv").read_text() == (
        "model,extraction,analysis\nllama3.2,50.0,60.0\nqwen3_4b,0.0,0.0\ngpt-4o,91.7,80.0\n")
    assert (out / "summary_counts.csv").read_text() == (
        "model,extraction,analysis\nllama3.2,6,10\nqwen3_4b,6,10\ngpt-4o,6,10\n")
    assert (out / "optimized_scores.csv").read_text() == (
        "model,extraction,analysis\nllama3.2,75.0,70.0\nqwen3_4b,100.0,100.0\ngpt-4o,100.0,90.0\n")
    assert (out / "delta_scores.csv").read_text() == (
        "model,extraction,analysis\nllama3.2,25.0,10.0\nqwen3_4b,100.0,100.0\ngpt-4o,8.3,10.0\n")


def test_details_aligned_on_example_id(golden):
    out, _ = golden
    rows = read_rows(out / "details" / "llama3.2_analysis.csv")
    assert [r["example_id"] for r in rows] == [f"a{i}" for i in range(10)]
    assert list(rows[0]) == ["example_id", "ground_truth", "baseline_prediction", "baseline_score",
                             "optimized_prediction", "optimized_score", "cot_zero_shot_prediction",
                             "cot_zero_shot_score"]
    assert (rows[0]["baseline_score"], rows[0]["optimized_score"]) == ("1.0", "0.0")  # lost a0
    assert (rows[6]["baseline_score"], rows[6]["optimized_score"]) == ("0.0", "1.0")  # gained a6
    assert rows[1]["ground_truth"] == "yes"
    assert len(read_rows(out / "details" / "gpt-4o_extraction.csv")) == 6


def test_intervals_and_paired_tests(golden):
    out, res = golden
    arms = {(r["model"], r["task"], r["phase"]): r for r in read_rows(out / "arms.csv")}
    a = arms[("gpt-4o", "analysis", "baseline")]
    assert a["interval"] == "Wilson" and float(a["ci_low"]) == pytest.approx(0.4902, abs=5e-4)
    assert float(a["ci_high"]) == pytest.approx(0.9433, abs=5e-4)
    e = arms[("gpt-4o", "extraction", "baseline")]
    assert e["interval"] == "bootstrap" and float(e["score"]) == pytest.approx(22 / 24, abs=1e-6)
    assert float(e["ci_low"]) <= 22 / 24 <= float(e["ci_high"])
    assert ("llama3.2", "analysis", "cot_zero_shot") in arms
    d = {(r["model"], r["task"], r["arm"]): r for r in read_rows(out / "deltas.csv")}
    q = d[("qwen3_4b", "analysis", "optimized")]
    assert float(q["p"]) == pytest.approx(2 / 1024) and q["n_shared"] == "10"
    assert float(q["holm_p"]) == pytest.approx(6 * 2 / 1024) and q["holm_reject"] == "1"
    assert q["verdict"] == "improved" and "McNemar exact (0 lost, 10 gained)" in q["test"]
    assert float(d[("llama3.2", "analysis", "optimized")]["p"]) == pytest.approx(1.0)  # b=1, c=2
    # extraction: paired swap permutation of micro-F1, exact: 2/64 and 2/8 (see test_stats)
    qe = d[("qwen3_4b", "extraction", "optimized")]
    assert float(qe["p"]) == pytest.approx(2 / 64) and "exact (2^6)" in qe["test"]
    assert float(qe["holm_p"]) == pytest.approx(5 * 2 / 64) and qe["holm_reject"] == "0"
    le = d[("llama3.2", "extraction", "optimized")]
    assert float(le["p"]) == pytest.approx(0.25) and le["verdict"] == "no detectable effect"
    assert float(le["delta"]) == pytest.approx(0.25)
    assert sum(r["holm_reject"] == "1" for r in d.values()) == 1
    assert d[("llama3.2", "analysis", "cot_zero_shot")]["holm_p"] == ""  # extra arms are outside the Holm family


def test_summary_sections(golden):
    out, _ = golden
    md = (out / "SUMMARY.md").read_text()
    for heading in ("## Scores", "## Delta (optimized − baseline)", "## Other arms", "## Arbitrage scoreboard",
                    "## Variance analysis (phase 2)", "## Economics", "## Parse failures and errors",
                    "## Reasoning models", "## Demo-count curves (phase 3)", "## Tipping point (phase 5)"):
        assert heading in md, heading
    assert "WARNING" not in md and "SMOKE DATA" not in md
    assert "1 of 6 delta(s) survive Holm" in md
    assert "no detectable effect" in md
    # extraction resolves to its real Task (micro-F1): no 'module could not be loaded' note
    assert "could not be loaded" not in md


def test_scoreboard_rank_inversion(golden):
    out, _ = golden
    md = (out / "SUMMARY.md").read_text()
    inv = [line for line in md.splitlines() if line.startswith("- analysis: qwen3_4b optimized 100.0 > gpt-4o")]
    assert len(inv) == 1 and "not significant" in inv[0] and "p=1.000" in inv[0] and "n=10 shared" in inv[0]
    assert "(0 API-only right, 1 local-only right)" in inv[0]
    assert md.count("optimized 100.0 > gpt-4o optimized") == 1  # extraction ties (100 vs 100): no inversion
    sb = {(r["task"], r["api_phase"]): r for r in read_rows(out / "scoreboard.csv")}
    r = sb[("analysis", "baseline")]
    # two local candidates: the best is chosen on the seeded selection half {a0, a2, a3, a5, a6} (qwen3_4b 5/5 vs
    # llama3.2 4/5) and compared on the test half {a1, a4, a7, a8, a9}, where gpt-4o baseline misses a8 and a9
    assert r["best_local_optimized"] == "qwen3_4b" and r["n_shared"] == "5"
    assert float(r["delta"]) == pytest.approx(0.4) and float(r["local_score"]) == pytest.approx(1.0)
    assert float(r["p"]) == pytest.approx(0.5)  # McNemar 0/2 on the test half
    assert r["chosen_on"].startswith("best of 2 on a seeded half (n=5")
    assert r["family"] == "Holm across the 4 scoreboard comparisons"
    assert float(sb[("extraction", "optimized")]["delta"]) == 0.0


def test_variance_analysis(golden):
    out, _ = golden
    md = (out / "SUMMARY.md").read_text()
    # within-task SS = 0.54 + 0.476852 over df 4 -> 0.254213 (2542.1 pts^2); within-model SS 0.0113889/3
    assert "2542.1 (df=4)" in md and "38.0 (df=3)" in md
    assert "| ratio within-task ÷ within-model | 66.96 |" in md
    assert "n/a (needs model pairs sharing ≥3 tasks)" in md
    assert md.count("some improved, none hurt") == 2
    assert "Demo-count pattern: 0 or max, never in between" in md


def test_later_phase_tables_are_formatted(golden):
    out, _ = golden
    md = (out / "SUMMARY.md").read_text()
    curves = md[md.index("## Demo-count curves (phase 3)"):md.index("## Tipping point (phase 5)")]
    # fractions become % with their interval; the phase-1 delta becomes signed points
    assert "| llama3.2 | analysis | bootstrapped | 2 | 62.0 | [52.0, 72.0] | 50 | 0 | +10.0 |" in curves
    # decomposition: effects in points with the paired CI and p; best n with its score
    assert ("| llama3.2 | analysis | 8 | 40.0 | 50.0 | 66.0 | +10.0 [-5.0, +25.0] p=0.500 | "
            "+16.0 [+2.0, +30.0] p=0.031 | 4 (70.0) | 50 |") in curves
    tipping = md[md.index("## Tipping point (phase 5)"):md.index("## Inputs")]
    # a sparse summary (older/hand-made file): missing columns shown as dashes, nothing invented
    assert "| llama3.2 | analysis | learnable | 60.0 | 4 | 4 | – | – |" in tipping
    assert "| qwen3_4b | analysis | too_hard | 0.0 | – | 8 | – | – |" in tipping
    assert "| llama3.2 | analysis | 4 | 3 | 74.0 [60.0, 86.0] | +14.0 [+4.0, +24.0] p=0.0080 | improved | 90 |" \
        in tipping
    assert "| llama3.2 | analysis | 0 | 1 | 60.0 [45.0, 73.0] | – | – | 0 |" in tipping


def test_economics(golden):
    out, _ = golden
    econ = {(r["model"], r["task"], r["phase"]): r for r in read_rows(out / "economics.csv")}
    g = econ[("gpt-4o", "analysis", "baseline")]
    assert g["n_cached"] == "2" and g["rows_recomputed"] == "2"
    assert float(g["spend_usd"]) == pytest.approx(8 * 0.00035)
    assert float(g["usd_per_example"]) == pytest.approx(0.00035)
    assert float(g["usd_per_1k"]) == pytest.approx(0.35)
    assert float(g["usd_per_correct"]) == pytest.approx(0.00035 * 10 / 8)
    assert float(g["latency_p50_ms"]) == pytest.approx(450) and float(g["latency_p95_ms"]) == pytest.approx(765)
    assert float(g["input_per_example"]) == pytest.approx(100)
    q = econ[("qwen3_4b", "analysis", "optimized")]
    assert float(q["wall_s"]) == pytest.approx(5.0)  # 10 x 1 s / concurrency 2
    assert float(q["spend_usd"]) == pytest.approx(5 / 3600 * LOCAL_RATE)
    be = {(r["model"], r["task"]): r for r in read_rows(out / "break_even.csv")}
    b = be[("qwen3_4b", "analysis")]
    # $0.40 teacher + 1 h x $0.36 = $0.76; saving vs gpt-4o optimized = 0.00085 - 0.00005 = 0.0008 -> 950 calls
    assert float(b["optimization_cost_usd"]) == pytest.approx(0.76)
    assert b["reference"] == "gpt-4o" and b["reference_phase"] == "optimized"
    assert float(b["saving_per_call_usd"]) == pytest.approx(0.0008)
    assert b["payback_calls"] == "950"
    assert "optimization cost unknown" in be[("qwen3_4b", "extraction")]["statement"]
    assert "matches no API arm" in be[("llama3.2", "analysis")]["statement"]
    md = (out / "SUMMARY.md").read_text()
    assert "pays back after 950 calls" in md


def test_failures_and_reasoning(golden):
    out, _ = golden
    md = (out / "SUMMARY.md").read_text()
    assert "| llama3.2 | analysis | baseline | 10 | 2 | 20.0% | 1 | 10.0% | timeout (×1) |" in md
    assert "| qwen3_4b | analysis | optimized | 10 (0 cached) | 1000 | 1000 | 50.0 | 80.0 | 62% |" in md


def test_extra_phase_does_not_touch_main_matrices(tmp_path):
    rd = build_fixture(tmp_path, extras=False)
    run_inprocess(rd)
    assert (rd / "golden" / "summary_scores.csv").read_text().startswith("model,extraction,analysis\nllama3.2,50.0")
    assert "## Other arms" not in (rd / "golden" / "SUMMARY.md").read_text()


def test_golden_tables_come_from_the_analysis_alone(golden, tmp_path, monkeypatch):
    """The golden CSVs are written from the Analysis alone: no document is built first (they once depended on the
    report's sections having run), and they are byte for byte the ones a full consolidation writes."""
    from src.consolidation import document, golden as golden_files
    from src.consolidation.analysis import analyse
    from src.consolidation.inputs import load_inputs
    from src.tasks import get_task

    out, _ = golden
    rd = out.parent
    config = load_config(ROOT)

    def no_document(*_: Any) -> None:
        raise AssertionError("the document must not be needed to write the golden CSVs")

    monkeypatch.setattr(document, "build_document", no_document)
    monkeypatch.setattr(golden_files, "build_document", no_document)
    an = analyse(load_inputs(rd, config, lambda key: get_task(key, config)),
                 Options(rd, out, False, LOCAL_RATE, 1000, 0))
    golden_files.write_tables(an, tmp_path / "tables")
    tables = snapshot(tmp_path / "tables")
    expected = {name: data for name, data in snapshot(out).items() if name.endswith(".csv")}
    assert sorted(tables) == sorted(expected) and "scoreboard.csv" in tables and "break_even.csv" in tables
    assert tables == expected


def test_optimization_sidecars_are_read_leniently(tmp_path):
    """A sidecar without model/task is placed by its file name (naming.parse_program_name); one that is not a JSON
    object, or not JSON at all, is a note."""
    from src.consolidation.programs import load_programs

    op = tmp_path / "optimized_programs"
    write_json(op / "qwen2.5_7b_qa_mipro_v2.meta.json", {"n_demos_total": 3, "optimization_cost": {"cost_usd": 1}})
    write_json(op / "x_qa_gepa.meta.json", {"model": "llama3.2", "task": "qa", "optimizer": "gepa"})
    (op / "broken_qa_mipro_v2.meta.json").write_text("{not json")
    (op / "list_qa_mipro_v2.meta.json").write_text("[1, 2]")
    notes: list[str] = []
    programs = load_programs(tmp_path, tasks=["qa", "math"], optimizers=["mipro_v2"], notes=notes)
    assert sorted(programs) == [("llama3.2", "qa"), ("qwen2.5_7b", "qa")]
    (ps,) = programs[("qwen2.5_7b", "qa")]
    assert ps.optimizer == "mipro_v2" and ps.meta.demo_count == 3 and ps.meta.optimization_cost.cost_usd == 1.0
    assert programs[("llama3.2", "qa")][0].optimizer == "gepa"  # the fields win over the name
    assert len(notes) == 2 and all("cannot be read" in n and ": ignored" in n for n in notes)
    assert "broken_qa_mipro_v2.meta.json" in notes[0] and "(not a JSON object)" in notes[1]


# ---- comparability, smoke, corrupt input -----------------------------------------------------------------------------

def _set_meta(path: Path, **changes: Any) -> None:
    meta = json.loads(path.read_text())
    for dotted, value in changes.items():
        cur = meta
        keys = dotted.split("__")
        for k in keys[:-1]:
            cur = cur[k]
        cur[keys[-1]] = value
    path.write_text(json.dumps(meta))


def test_mixed_dspy_versions_warn_and_strict_fails(tmp_path, capsys):
    rd = build_fixture(tmp_path, extras=False)
    odd = rd / "api_baseline_analysis_gpt-4o.meta.json"
    _set_meta(odd, unit__dspy="3.3.0", run__versions__dspy="3.3.0")
    res = run_inprocess(rd)
    md = (rd / "golden" / "SUMMARY.md").read_text()
    head = md[:md.index("## ")]
    assert "WARNING — NOT COMPARABLE" in head and "DSPy versions differ" in head
    assert "3.3.0: `api_baseline_analysis_gpt-4o.csv`" in head
    assert "DSPy versions differ" in capsys.readouterr().err
    assert any("DSPy" in w for w in res.warnings)
    out = tmp_path / "strict_out"
    proc = run_cli("--results-dir", str(rd), "--out", str(out), "--strict", "--bootstrap", "200")
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "comparability check failed" in lines[0] and "api_baseline_analysis_gpt-4o.csv" in \
        lines[0]
    assert not out.exists()
    assert not list(tmp_path.glob(".strict_out.*"))


def test_different_example_sets_and_smoke_are_loud(tmp_path):
    rd = build_fixture(tmp_path, extras=False)
    # llama3.2's optimized analysis only has 8 of the 10 examples; qwen3_4b's baseline ran on smoke data
    path = rd / "local_optimized_analysis_optimized_llama3.2.csv"
    rows = read_rows(path)[:8]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    _set_meta(rd / "local_baseline_analysis_qwen3_4b.meta.json", smoke_data=True)
    run_inprocess(rd)
    md = (rd / "golden" / "SUMMARY.md").read_text()
    head = md[:md.index("## ")]
    assert "built-in smoke samples: these numbers prove the pipeline, not model quality" in head
    assert "`local_baseline_analysis_qwen3_4b.csv`" in head
    assert "task analysis: eval example sets differ" in head and "8 examples" in head
    d = {(r["model"], r["task"]): r for r in read_rows(rd / "golden" / "deltas.csv")}
    assert d[("llama3.2", "analysis")]["n_shared"] == "8"
    html = (rd / "golden" / "report.html").read_text()
    assert 'id="smoke-banner"' in html and 'id="comparability-warnings"' in html


@pytest.mark.parametrize("damage", ["foreign", "truncated", "wrong_type", "empty"])
def test_corrupt_csv_one_line_error_and_golden_untouched(tmp_path, damage):
    rd = build_fixture(tmp_path, extras=False)
    first = run_cli("--results-dir", str(rd), "--bootstrap", "200", "--local-cost-per-hour", "0.36")
    assert first.returncode == 0, first.stderr
    before = snapshot(rd / "golden")
    assert "SUMMARY.md" in before and "report.html" in before
    if damage == "foreign":
        bad = rd / "notes.csv"
        bad.write_text("name,value\nalpha,1\nbeta,2\n")
    elif damage == "truncated":
        bad = rd / "local_baseline_analysis_llama3.2.csv"
        data = bad.read_bytes()
        bad.write_bytes(data[: len(data) - 120])  # cut in the middle of the last row
    elif damage == "wrong_type":
        bad = rd / "api_optimized_extraction_optimized_gpt-4o.csv"
        bad.write_text(bad.read_text().replace(",1.0,1,", ",high,1,", 1))
    else:
        bad = rd / "api_baseline_extraction_gpt-4o.csv"
        bad.write_text("")
    proc = run_cli("--results-dir", str(rd), "--bootstrap", "200")
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and bad.name in lines[0]
    assert "Traceback" not in proc.stderr
    assert snapshot(rd / "golden") == before
    assert not [p for p in rd.iterdir() if p.name.startswith(".golden.")]


def test_refuses_to_replace_a_foreign_out_folder(tmp_path):
    rd = build_fixture(tmp_path, extras=False)
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    proc = run_cli("--results-dir", str(rd), "--out", str(precious), "--bootstrap", "200")
    assert proc.returncode != 0 and "refusing to replace" in proc.stderr
    assert (precious / "thesis.tex").read_text() == "do not delete"


def test_program_provenance_checks(tmp_path):
    """A program saved under another DSPy version is a comparability warning; a sidecar describing another
    program than the evaluated one is a note."""
    rd = build_fixture(tmp_path, extras=False)
    _set_meta(rd / "local_optimized_analysis_optimized_llama3.2.meta.json", program__saved_dspy="3.1.0",
              program__version_mismatch=True)
    side = rd / "optimized_programs" / "qwen3_4b_analysis_mipro_v2.meta.json"
    _set_meta(side, program_sha256="0" * 64)
    res = run_inprocess(rd)
    assert any("`local_optimized_analysis_optimized_llama3.2.csv`: its program was saved under DSPy 3.1.0" in w
               for w in res.warnings)
    md = (rd / "golden" / "SUMMARY.md").read_text()
    assert "re-optimized since?" in md and "`qwen3_4b_analysis_mipro_v2.meta.json`" in md


def test_unknown_task_falls_back_loudly(tmp_path):
    """A task the registry cannot load (here: not registered at all) is consolidated with a loud note, no crash."""
    rd = build_fixture(tmp_path, extras=False)
    recs = [_rec("llama3.2", "mystery", "baseline", f"m{i}", s) for i, s in enumerate((0.2, 0.4, 0.9, 0.5))]
    write_csv(rd / "local_baseline_mystery_llama3.2.csv", recs)
    proc = run_cli("--results-dir", str(rd), "--bootstrap", "200")
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout
    md = (rd / "golden" / "SUMMARY.md").read_text()
    assert "task `mystery`: its module could not be loaded" in md and "treated as continuous" in md
    assert "no .meta.json sidecar" in md
    rows = {r["model"]: r for r in read_rows(rd / "golden" / "summary_scores.csv")}
    assert rows["llama3.2"]["mystery"] == "50.0"  # mean of 0.2, 0.4, 0.9, 0.5

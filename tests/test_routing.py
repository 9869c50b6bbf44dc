"""Routing and cascades (consolidation/routing.py) on a hand-computed results folder: policies replayed from the
recorded answers, costs and latencies per request, the recommended policy chosen on the selection half and
reported on the test half, routing.csv, the SUMMARY section and the report's figure."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_consolidate import _analysis, _meta, _rec, read_rows, run_inprocess

from src.results.files import write_csv, write_json
from src.results.naming import result_csv
from src.stats import core
from src.stats.selection import selection_split

IDS = [f"a{i}" for i in range(10)]
SEL, TEST = selection_split(IDS)  # ['a0', 'a2', 'a3', 'a5', 'a6'], ['a1', 'a4', 'a7', 'a8', 'a9']
LOCAL_USD = 1.0 / 2 / 3600 * 0.36  # 1 s of latency at concurrency 2 and $0.36/h


def _write(rd: Path, kind: str, phase: str, recs) -> None:
    path = result_csv(rd, kind, phase, recs[0].task, recs[0].model)
    write_csv(path, recs)
    write_json(path.with_suffix(".meta.json"), _meta(recs, kind, phase))  # concurrency 2


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    assert SEL == ["a0", "a2", "a3", "a5", "a6"] and TEST == ["a1", "a4", "a7", "a8", "a9"]
    rd = tmp_path_factory.mktemp("routing") / "results"
    # API: right on every example, $0.001 and 500 ms each.
    _write(rd, "api", "optimized", _analysis("gpt-4o", "optimized", set(range(10)), cost=0.001, latency=500.0))
    # Local: right except a2 (backend error, selection half), a4 (parse failure, test half), a7 (wrong, test half).
    local = _analysis("llama3.2", "optimized", set(range(10)) - {2, 4, 7}, latency=1000.0,
                      special={2: {"error": "boom"}, 4: {"pf": 1}})
    _write(rd, "local", "optimized", local)
    run_inprocess(rd)
    return rd / "golden"


def _policies(golden: Path) -> dict[str, dict[str, str]]:
    return {r["policy"]: r for r in read_rows(golden / "routing.csv")}


def test_policies_are_replayed_on_the_test_half(golden):
    p = _policies(golden)
    assert set(p) == {"always_api", "always_local", "cascade on error", "cascade on error+parse",
                      "cascade on error+parse+check"}
    assert all(r["n_test"] == "5" and r["n_selection"] == "5" and r["n_shared"] == "10" for r in p.values())
    api, local = p["always_api"], p["always_local"]
    assert float(api["quality"]) == 1.0 and float(api["usd_per_1k"]) == pytest.approx(1.0)
    assert float(api["share_local"]) == 0.0 and float(api["latency_ms"]) == 500.0
    # always local on the test half: a1, a8, a9 right of five
    assert float(local["quality"]) == pytest.approx(0.6) and float(local["share_local"]) == 1.0
    assert float(local["usd_per_1k"]) == pytest.approx(1000 * LOCAL_USD)
    assert float(local["added_latency_ms"]) == pytest.approx(500.0)
    # the error in the test half? none (a2 is in the selection half): the error cascade is always-local here
    assert float(p["cascade on error"]["quality"]) == pytest.approx(0.6)
    # the parse cascade escalates a4: 4/5 right, 80% kept local, every request pays the local attempt
    c = p["cascade on error+parse"]
    assert float(c["quality"]) == pytest.approx(0.8) and float(c["share_local"]) == pytest.approx(0.8)
    assert float(c["usd_per_1k"]) == pytest.approx(1000 * (5 * LOCAL_USD + 0.001) / 5)
    assert float(c["latency_ms"]) == pytest.approx((5 * 1000 + 500) / 5)
    assert float(c["savings_usd_per_1k"]) == pytest.approx(1.0 - 1000 * (5 * LOCAL_USD + 0.001) / 5)
    # the 'check' signal adds nothing here (no empty answers, non-numeric gold answers)
    assert p["cascade on error+parse+check"]["quality"] == c["quality"]
    # the paired delta and its CI against always-API agree with the reference paired bootstrap
    api_scores, casc = [1.0] * 5, [1.0, 1.0, 0.0, 1.0, 1.0]
    assert float(c["delta_vs_api"]) == pytest.approx(-0.2)
    lo, hi = core.paired_bootstrap_delta_ci(api_scores, casc, n_boot=1000, seed=1)
    assert (float(c["delta_ci_low"]), float(c["delta_ci_high"])) == pytest.approx((lo, hi))
    assert float(c["p"]) == pytest.approx(core.mcnemar_exact(1, 0))


def test_the_recommendation_is_chosen_on_one_half_and_checked_on_the_other(golden):
    p = _policies(golden)
    # On the selection half the error cascade escalates a2 and matches the API on all five (CI [0, 0]); it ties in
    # cost with the wider cascades and is listed first: it is chosen there ...
    chosen = [name for name, r in p.items() if r["recommended"] == "1"]
    assert chosen == ["cascade on error"]
    # ... and on the test half, where a7 is wrong and a4 unparsed, it falls 40 points short: the held-out check says
    # so instead of reporting the selection half's perfect match.
    r = p["cascade on error"]
    assert float(r["delta_vs_api"]) == pytest.approx(-0.4) and r["non_inferior"] == "0"
    md = (golden / "SUMMARY.md").read_text()
    section = md[md.index("## Routing and cascades"):md.index("## Parse failures")]
    assert "recommended **cascade on error**" in section and "**not** within the margin on the test half" in section
    assert "What this can and cannot tell" in section and "Correction family: none" in section
    assert "| cascade on error ★ ◆ |" in section or "| cascade on error ★ |" in section
    html = (golden / "report.html").read_text()
    assert "Routing and cascades" in html and html.count("data:image/png") >= 2


def test_frontier_and_margin(golden):
    p = _policies(golden)
    # always-API (best, dearest), always-local (cheapest) and the parse cascade (between them on both) are on the
    # frontier; on the test half the error cascade escalates nothing, so it ties with always-local (a tie is not
    # dominated). A point that is dearer and no better than another is off it: checked on synthetic results below.
    assert p["always_api"]["frontier"] == "1" and p["always_local"]["frontier"] == "1"
    assert p["cascade on error+parse"]["frontier"] == "1"
    assert p["cascade on error"]["usd_per_1k"] == p["always_local"]["usd_per_1k"]
    assert p["cascade on error"]["frontier"] == "1"
    assert all(r["margin"] == "0.01" for r in p.values())


def test_signals_and_the_numeric_check():
    from src.consolidation.routing import fires, numeric_task
    from src.consolidation.inputs import Unit

    def rec(pred: str, gold: str, **kw):
        r = _rec("m", "math", "baseline", "x", 0.0, gt=gold, **kw)
        r.prediction = pred
        return r

    unit = Unit(Path("local_baseline_math_m.csv"), "baseline", "local", "m", "math",
                [rec("42", "42"), rec("$1,200", "1200"), rec("no idea", "7")])
    assert numeric_task([unit])
    assert fires(rec("I think it is twelve", "12"), "check", True)
    assert not fires(rec("the answer is 12", "12"), "check", True)
    assert fires(rec("   ", "yes"), "check", False) and not fires(rec("yes", "no"), "check", False)
    assert fires(rec("", "1", error="x"), "error", True) and fires(rec("", "1", pf=1), "parse", True)
    words = Unit(Path("local_baseline_qa_m.csv"), "baseline", "local", "m", "qa", [rec("a", "Paris")])
    assert not numeric_task([words])


def test_a_dominated_policy_is_off_the_frontier():
    from src.consolidation.routing import PolicyResult, mark_frontier

    def pol(name: str, usd: float, q: float) -> PolicyResult:
        return PolicyResult(name, (), 10, 0.5, q, q, q, 0.0, 0.0, 0.0, 1.0, usd, 0.0, 0.0)

    pols = [pol("always_api", 1.0, 0.9), pol("always_local", 0.1, 0.5), pol("cascade", 0.5, 0.5),
            pol("x", 0.6, 0.95), pol("y", 0.6, 0.95)]
    mark_frontier(pols)
    assert [x.frontier for x in pols] == [False, True, False, True, True]

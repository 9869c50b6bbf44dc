"""--repeats k: every example answered k times, each attempt recorded (column `repeat`), each with its own cache key
and seed; a k = 1 file is what it was plus that column; a larger k extends a unit without redoing attempts; and
consolidation reports stability and pairs deltas on per-example means."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from loopback import ScriptedOpenAI, reply_text
from test_consolidate import _meta, _rec, read_rows, run_inprocess

from src.backends.session import Sessions, SessionOptions
from src.evaluation.unit import EvalUnit, run_unit
from src.registry import load_config
from src.results.files import write_csv, write_json
from src.results.naming import meta_path, result_csv
from src.results.record import CSV_COLUMNS
from src.results.schema import UnitMeta
from src.stats import core
from src.tasks import get_task
from src.tasks.sources import resolve_source
from src.tasks.splits import load_task_data


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def scripted(tmp_path, monkeypatch):
    answers = {"n": 0}

    def behaviour(req: dict, i: int):
        answers["n"] += 1
        return reply_text('{"answer": "yes"}' if answers["n"] % 3 else '{"answer": "no"}')

    with ScriptedOpenAI(behaviour) as server:
        (tmp_path / "models.json").write_text(json.dumps({"models": [{
            "key": "scripted", "provider": "openai_compatible", "model_id": "scripted", "kind": "local",
            "api_base": server.url, "request_timeout_s": 5.0}]}))
        monkeypatch.chdir(tmp_path)
        config = load_config()
        task = get_task("analysis", config)
        data = load_task_data(task, resolve_source("builtin", config))
        yield server, config, task, data, tmp_path / "results"


def _run(config, task, data, results: Path, k: int, *, cache: bool = True):
    session = Sessions(config, SessionOptions(adapter="json", cache=cache, concurrency=1)).session("scripted")
    unit = EvalUnit("baseline", task, data, data.eval_subset(3), task.program(),
                    results / "local_baseline_analysis_scripted.csv", {"kind": "baseline"}, repeats=k)
    return unit, run_unit(unit, session, results_dir=results, force=False, run_ctx={}, progress=False)


def test_k1_writes_what_it_wrote_plus_the_repeat_column(scripted):
    server, config, task, data, results = scripted
    unit, summary = _run(config, task, data, results, 1)
    rows = _rows(unit.csv_path)
    # trailing columns, in the order they were added (older files lack them): retries, repeat, inputs
    assert list(rows[0]) == CSV_COLUMNS and CSV_COLUMNS[-3:] == ["retries", "repeat", "inputs"]
    assert [r["repeat"] for r in rows] == ["0"] * 3 and summary.n == 3 and len(server.requests) == 3
    assert all("seed" not in req for req in server.requests)  # the first attempt is the request it always was
    assert UnitMeta.read(meta_path(unit.csv_path)).repeats == 1


@pytest.fixture
def fresh_cache(tmp_path):
    """DSPy's response cache on, empty, and this test's alone (the project's cache is shared by every run)."""
    import os

    import dspy

    dspy.configure_cache(enable_disk_cache=True, enable_memory_cache=True, disk_cache_dir=str(tmp_path / "cache"))
    yield
    dspy.configure_cache(enable_disk_cache=True, enable_memory_cache=True,
                         disk_cache_dir=os.environ["DSPY_CACHEDIR"])


def test_repeats_bypass_the_cache_take_seeds_extend_a_unit_and_resume(scripted, fresh_cache):
    server, config, task, data, results = scripted
    unit, _ = _run(config, task, data, results, 1)
    assert len(server.requests) == 3
    unit.csv_path.unlink()
    from src.results.naming import journal_path

    journal_path(unit.csv_path).unlink()
    unit, _ = _run(config, task, data, results, 1)  # the same unit again from scratch: served by the cache
    assert len(server.requests) == 3
    unit, summary = _run(config, task, data, results, 3)  # extends the k = 1 unit: only attempts 1 and 2 run
    assert len(server.requests) == 9, "each later attempt must reach the server, not DSPy's cache"
    assert sorted(req.get("seed") for req in server.requests[3:]) == [1, 1, 1, 2, 2, 2]
    rows = _rows(unit.csv_path)
    assert [(r["example_id"], r["repeat"]) for r in rows] == [(ex.id, str(r)) for ex in unit.examples
                                                              for r in range(3)]
    assert all(r["cache_hit"] == "0" for r in rows if r["repeat"] != "0")  # attempt 0 came from the cache
    assert summary.n == 3 and UnitMeta.read(meta_path(unit.csv_path)).repeats == 3
    _run(config, task, data, results, 3)  # everything done: nothing is asked again
    assert len(server.requests) == 9


def _analysis_repeats(model: str, phase: str, table: list[list[int]]) -> list:
    """table[i][r]: correctness of attempt r at example a{i}; predictions 'yes'/'no' follow it."""
    out = []
    for i, attempts in enumerate(table):
        for r, ok in enumerate(attempts):
            rec = _rec(model, "analysis", phase, f"a{i}", float(ok), gt="yes")
            rec.prediction, rec.repeat = ("yes" if ok else "no"), r
            out.append(rec)
    return out


def test_consolidation_reports_stability_and_pairs_on_per_example_means(tmp_path):
    rd = tmp_path / "results"
    base = [[0, 0, 0], [1, 1, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0], [1, 0, 1]]
    opt = [[1, 1, 1], [1, 1, 1], [1, 1, 0], [1, 1, 1], [0, 1, 0], [1, 1, 1]]
    for phase, table in (("baseline", base), ("optimized", opt)):
        recs = _analysis_repeats("llama3.2", phase, table)
        path = result_csv(rd, "local", phase, "analysis", "llama3.2")
        write_csv(path, recs)
        write_json(path.with_suffix(".meta.json"), _meta(recs, "local", phase))
    run_inprocess(rd)
    out = rd / "golden"
    st = {r["phase"]: r for r in read_rows(out / "stability.csv")}
    b = st["baseline"]
    means = [sum(x) / 3 for x in base]
    assert b["repeats"] == "3" and b["n"] == "6" and b["n_complete"] == "6"
    assert float(b["mean_score"]) == pytest.approx(sum(means) / 6)
    lo, hi = core.bootstrap_ci(means, n_boot=1000, seed=0)  # the cluster bootstrap: examples with their attempts
    assert (float(b["ci_low"]), float(b["ci_high"])) == pytest.approx((lo, hi))
    runs = [sum(x[r] for x in base) / 6 for r in range(3)]
    assert [float(x) for x in b["run_scores"].split()] == pytest.approx(runs)
    assert float(b["run_sd"]) == pytest.approx(float(__import__("statistics").stdev(runs)))
    assert float(b["agreement"]) == pytest.approx(3 / 6)  # a0, a1, a4 agree
    # the delta is paired on per-example means, with the permutation test (not McNemar on fractional scores)
    d = {r["arm"]: r for r in read_rows(out / "deltas.csv")}["optimized"]
    om = [sum(x) / 3 for x in opt]
    assert float(d["delta"]) == pytest.approx(sum(om) / 6 - sum(means) / 6)
    assert "permutation" in d["test"] and "McNemar" not in d["test"]
    arms = {r["phase"]: r for r in read_rows(out / "arms.csv")}
    assert arms["baseline"]["n"] == "6" and arms["baseline"]["interval"] == "bootstrap"
    md = (out / "SUMMARY.md").read_text()
    assert "## Stability (repeats)" in md and "| llama3.2 | analysis | baseline | 3 |" in md


def test_routing_sweeps_agreement_thresholds_with_repeats(tmp_path):
    rd = tmp_path / "results"
    local = [[1, 1, 1], [1, 0, 1], [0, 0, 0], [1, 0, 0], [1, 1, 1], [0, 1, 0], [1, 1, 1], [1, 1, 1]]
    recs = _analysis_repeats("llama3.2", "baseline", local)
    path = result_csv(rd, "local", "baseline", "analysis", "llama3.2")
    write_csv(path, recs)
    write_json(path.with_suffix(".meta.json"), _meta(recs, "local", "baseline"))
    api = [_rec("gpt-4o", "analysis", "baseline", f"a{i}", 1.0, gt="yes", cost=0.001) for i in range(8)]
    path = result_csv(rd, "api", "baseline", "analysis", "gpt-4o")
    write_csv(path, api)
    write_json(path.with_suffix(".meta.json"), _meta(api, "api", "baseline"))
    run_inprocess(rd)
    pol = {r["policy"]: r for r in read_rows(rd / "golden" / "routing.csv")}
    assert "cascade on error+parse+check+agree<0.6667" in pol and "cascade on error+parse+check+agree<1" in pol
    # agree<1 escalates every example whose attempts disagree: on the test half, those are replaced by the API
    from src.stats.selection import selection_split

    _, test = selection_split([f"a{i}" for i in range(8)])
    disagree = [e for e in test if len(set(local[int(e[1:])])) > 1]
    r = pol["cascade on error+parse+check+agree<1"]
    assert float(r["share_local"]) == pytest.approx(1 - len(disagree) / len(test))


@pytest.mark.slow
def test_repeats_on_the_embedded_model_produce_stability_figures(embedded_config, tmp_path):
    """The real path: python -m src.run_baseline_v2 --repeats 3 on the embedded model (llama.cpp's server takes a
    seed per request), then consolidation's stability figures."""
    from conftest import run_cli

    results = tmp_path / "results"
    r = run_cli(["src.run_baseline_v2", "--models", "smollm2-135m", "--tasks", "analysis", "--limit", "2",
                 "--data", "builtin", "--results-dir", str(results), "--repeats", "3"])
    assert r.returncode == 0, r.stderr[-2000:]
    rows = _rows(results / "local_baseline_analysis_smollm2-135m.csv")
    assert sorted((x["example_id"], x["repeat"]) for x in rows) == sorted(
        (e, str(k)) for e in {x["example_id"] for x in rows} for k in range(3))
    assert UnitMeta.read(results / "local_baseline_analysis_smollm2-135m.meta.json").repeats == 3
    c = run_cli(["src.consolidate_results", "--results-dir", str(results)])
    assert c.returncode == 0, c.stderr[-2000:]
    st = read_rows(results / "golden" / "stability.csv")
    assert len(st) == 1 and st[0]["repeats"] == "3" and st[0]["n"] == "2" and len(st[0]["run_scores"].split()) == 3
    assert "## Stability (repeats)" in (results / "golden" / "SUMMARY.md").read_text()

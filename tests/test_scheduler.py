"""The study scheduler: unit-graph semantics, real concurrency, and a study run by it leaving the same results as
the stage commands run one after another (loopback OpenAI-protocol endpoints; the embedded end-to-end path is
tests/test_experiment.py)."""

from __future__ import annotations

import csv
import json
import threading
import time
from pathlib import Path

import pytest
from conftest import run_cli
from loopback import ScriptedOpenAI, chat_reply

from src.scheduling.graph import Unit, UnitGraph, UnitResult
from src.scheduling.local import LocalExecutor
from src.scheduling.progress import StudyProgress, render


def _graph(units: list[Unit]) -> UnitGraph:
    g = UnitGraph()
    for u in units:
        g.add(u)
    return g


def test_independent_units_run_at_once_and_dependents_wait():
    barrier = threading.Barrier(3, timeout=10)  # only passes if three units are running together
    order: list[str] = []

    def waits(name: str):
        def run():
            barrier.wait()
            order.append(name)
            return UnitResult("ran")
        return run

    def after():
        order.append("after")
        return UnitResult("ran")

    g = _graph([Unit("a", "s1", waits("a")), Unit("b", "s1", waits("b")), Unit("c", "s1", waits("c")),
                Unit("d", "s2", after, requires=("a", "b", "c"))])
    progress = StudyProgress(g)
    results = LocalExecutor(max_units=8, report_every_s=0).run(g, progress)
    assert {k: r.status for k, r in results.items()} == {"a": "ran", "b": "ran", "c": "ran", "d": "ran"}
    assert order[-1] == "after"
    snap = progress.snapshot()
    assert snap.stages["s1"].done == 3 and snap.stages["s2"].done == 1 and snap.stages["s1"].waiting == 0
    assert "s1" in render(snap) and "3/3" in render(snap)
    assert snap.stages["s1"].ended_s is not None and "ended after" in render(snap)


def test_stage_eta_counts_the_calls_still_to_come_of_the_stage_and_those_before_it(monkeypatch):
    from src.backends.endpoints import EndpointRegistry
    from src.scheduling import progress as progress_mod

    registry = EndpointRegistry()
    budget = registry.budget("ep", 2)
    noop = lambda: UnitResult("ran")  # noqa: E731
    g = _graph([Unit("b1", "baseline", noop, calls={"ep": 10}), Unit("b2", "baseline", noop, calls={"ep": 10}),
                Unit("o1", "optimize", noop, calls={"ep": 30}),
                Unit("e1", "eval", noop, requires=("o1",), calls={"ep": 10})])
    clock = [1000.0]
    monkeypatch.setattr(progress_mod.time, "monotonic", lambda: clock[0])
    p = StudyProgress(g, registry)
    p.started("b1"), p.started("o1")
    clock[0] += 5
    budget.calls = 10  # b1 finished its 10 projected calls ...
    p.finished("b1", UnitResult("ran"))
    p.started("b2")
    clock[0] += 5
    budget.calls = 20  # ... and 10 more were made by the running units b2 and o1 (projected 10 + 30)
    snap = p.snapshot()
    rate = 20 / 10.0  # calls per second so far
    # baseline: b2's 10 less its share (10 of 40) of the 10 calls running units made
    assert snap.stages["baseline"].eta_s == pytest.approx((10 - 10 * 10 / 40) / rate)
    # optimize ends after baseline and optimize: 10 + 30 less the 10 already made
    assert snap.stages["optimize"].eta_s == pytest.approx((40 - 10) / rate)
    assert snap.stages["eval"].eta_s == pytest.approx((50 - 10) / rate)
    assert snap.stages["baseline"].started_s == 0 and snap.stages["eval"].started_s is None
    text = render(snap)
    assert "baseline" in text and "1/2" in text and "elapsed 0m10s, ETA 0m03s" in text
    assert "ETA 0m20s" in text.splitlines()[3]  # eval: not started, its ETA alone


def test_one_unit_at_a_time_when_bounded():
    live, peak, lock = [0], [0], threading.Lock()

    def run():
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.05)
        with lock:
            live[0] -= 1
        return UnitResult("ran")

    g = _graph([Unit(f"u{i}", "s", run) for i in range(5)])
    LocalExecutor(max_units=1, report_every_s=0).run(g)
    assert peak[0] == 1


def test_a_failed_input_blocks_what_requires_it_not_what_only_runs_after_it():
    def boom():
        raise RuntimeError("bug in a unit")

    g = _graph([Unit("seed", "opt", boom), Unit("other", "opt", lambda: UnitResult("ran")),
                Unit("select", "sel", lambda: UnitResult("ran"), after=("seed", "other")),
                Unit("eval", "eval", lambda: UnitResult("ran"), requires=("seed",))])
    results = LocalExecutor(report_every_s=0).run(g)
    assert results["seed"].status == "failed" and "bug in a unit" in results["seed"].message
    assert results["select"].status == "ran"  # runs after its seeds whatever they did
    assert results["eval"].status == "failed" and "not run: seed failed" in results["eval"].message


def test_graph_refuses_unknown_dependencies():
    g = UnitGraph()
    with pytest.raises(ValueError):
        g.add(Unit("x", "s", lambda: UnitResult("ran"), requires=("nope",)))


# ---- a whole study on loopback endpoints: scheduler vs stage by stage -----------------------------------------------

def _study(tmp: Path, urls: list[str]) -> Path:
    (tmp / "models.json").write_text(json.dumps({"models": [
        {"key": "lb-a", "provider": "openai_compatible", "model_id": "scripted-a", "kind": "local", "api_base": urls[0],
         "json_fallback": False},
        {"key": "lb-b", "provider": "openai_compatible", "model_id": "scripted-b", "kind": "local", "api_base": urls[1],
         "json_fallback": False, "endpoint_concurrency": 2}]}))
    study = tmp / "study.yaml"
    study.write_text("name: lb\nstudents: [lb-a, lb-b]\ntasks: [math, analysis]\nlimit: 3\noptimizer: mipro_v2\n"
                     "preset: quick\nseeds: [10, 20]\ndata: builtin\nadapter: chat\n")
    return study


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    # What legitimately differs between two runs of the same work: timing, and whether a request was answered from
    # DSPy's cache (then it reports no tokens, so no cost). Stage by stage, an optimized eval whose program sees the
    # same prompt as the baseline always finds the baseline's answer cached; run beside it, it may ask first.
    for r in rows:
        for k in ("latency_ms", "timestamp", "cache_hit", "input_tokens", "output_tokens", "cost_usd"):
            r.pop(k, None)
    return rows


def test_scheduler_leaves_the_same_results_as_the_stages_one_after_another(tmp_path):
    with ScriptedOpenAI(lambda req, i: chat_reply(req, "1")) as a, ScriptedOpenAI(lambda req, i: chat_reply(req, "1")) as b:
        study = _study(tmp_path, [a.url, b.url])
        out = {}
        for executor in ("stages", "local"):
            res = tmp_path / f"results-{executor}"
            r = run_cli(["src.experiment", "--config", str(study), "--results-dir", str(res), "--executor", executor],
                        cwd=tmp_path, env={"DSPY_CACHEDIR": str(tmp_path / f"cache-{executor}")}, timeout=900)
            assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
            assert "=== summary" in r.stdout
            # the run ends by naming the report and, with no API-side model in the study, how to get one
            assert f"report: {res / 'golden' / 'report.html'}" in r.stdout and "\nnext: " in r.stdout
            out[executor] = res
        again = run_cli(["src.experiment", "--config", str(study), "--results-dir", str(out["local"])], cwd=tmp_path,
                        env={"DSPY_CACHEDIR": str(tmp_path / "cache-local")}, timeout=900)
        assert again.returncode == 0, again.stderr[-2000:]
        for stage in ("baseline", "optimize", "select", "eval"):  # every unit's result file is reused
            line = next(x for x in again.stdout.splitlines() if x.strip().startswith(stage + " "))
            assert " 0 ran" in line and " 0 failed" in line, again.stdout
    stages, local = out["stages"], out["local"]
    csvs = sorted(p.name for p in stages.glob("*.csv"))
    assert len(csvs) == 8 and csvs == sorted(p.name for p in local.glob("*.csv"))
    for name in csvs:
        assert _rows(stages / name) == _rows(local / name), name
    programs = sorted(p.name for p in (stages / "optimized_programs").glob("*.json"))
    assert len(programs) == 8  # 2 models x 2 tasks: program + sidecar
    for name in programs:
        if name.endswith(".meta.json"):
            s = json.loads((stages / "optimized_programs" / name).read_text())
            loc = json.loads((local / "optimized_programs" / name).read_text())
            assert s["chosen_seed"] == loc["chosen_seed"] and s["dev_score"] == loc["dev_score"], name
            assert s["header"] == loc["header"] and [x["dev_score"] for x in s["seeds"]] == \
                [x["dev_score"] for x in loc["seeds"]]
            # each seed's own meter: the calls counted for a seed are that seed's, not its neighbours'
            assert [x["lm_calls"] for x in s["seeds"]] == [x["lm_calls"] for x in loc["seeds"]], name
        else:
            assert (stages / "optimized_programs" / name).read_bytes() == \
                (local / "optimized_programs" / name).read_bytes(), name
    for name in ("summary_scores.csv", "optimized_scores.csv", "delta_scores.csv"):
        assert (stages / "golden" / name).read_text() == (local / "golden" / name).read_text(), name
    # sidecars say which endpoint served the unit
    meta = json.loads(next(local.glob("*lb-b.meta.json")).read_text())
    assert meta["endpoints"] == {b.url: 3}


def test_rerun_reuses_every_unit_and_dry_run_prints_the_schedule(tmp_path):
    with ScriptedOpenAI(lambda req, i: chat_reply(req, "1")) as a, ScriptedOpenAI(lambda req, i: chat_reply(req, "1")) as b:
        study = _study(tmp_path, [a.url, b.url])
        res = tmp_path / "results"
        dry = run_cli(["src.experiment", "--config", str(study), "--results-dir", str(res), "--phases",
                       "baseline,eval", "--dry-run"], cwd=tmp_path)
        assert dry.returncode == 0, dry.stderr[-2000:]
        assert "projected LM calls per endpoint" in dry.stdout
        assert f"{a.url}#scripted-a: 12" in dry.stdout  # 2 tasks x 3 examples x (baseline + eval)
        assert not res.exists() and not a.requests
        args = ["src.experiment", "--config", str(study), "--results-dir", str(res), "--phases", "baseline"]
        first = run_cli(args, cwd=tmp_path, env={"DSPY_CACHEDIR": str(tmp_path / "c")})
        assert first.returncode == 0, first.stderr[-2000:]
        n = len(a.requests) + len(b.requests)
        again = run_cli(args, cwd=tmp_path, env={"DSPY_CACHEDIR": str(tmp_path / "c")})
        assert again.returncode == 0
        line = next(x for x in again.stdout.splitlines() if x.strip().startswith("baseline "))
        assert " 0 ran" in line and " 4 reused" in line, again.stdout
        assert len(a.requests) + len(b.requests) == n  # nothing was asked again


def test_the_schedule_of_every_task_builds_before_their_data_is_used(tmp_path):
    """Regression: classification's program is built from its data (the label names); the study's default `tasks:
    all` stopped the README's first command before any work ("load its data before building the program")."""
    study = _study(tmp_path, ["http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"])
    study.write_text(study.read_text().replace("tasks: [math, analysis]", "tasks: all"))
    dry = run_cli(["src.experiment", "--config", str(study), "--results-dir", str(tmp_path / "results"), "--dry-run"],
                  cwd=tmp_path)
    assert dry.returncode == 0, dry.stdout[-2000:] + dry.stderr[-2000:]
    assert "baseline lb-a/classification" in dry.stdout and "baseline lb-a/code" in dry.stdout

"""--max-cost: a priced stand-in model (a models.json entry with prices, served by the scripted OpenAI-protocol
loopback) is refused before any call when the projection is over the cap, and stopped at the cap while running —
never spending past it, keeping what was done, and resuming when rerun with a higher cap."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import run_cli
from loopback import ScriptedOpenAI, reply_text

from src.backends.session import Sessions, SessionOptions
from src.evaluation.unit import EvalUnit, SpendStopped, run_unit
from src.registry import load_config
from src.results.naming import journal_path, meta_path
from src.results.schema import UnitMeta
from src.tasks import get_task
from src.tasks.sources import resolve_source
from src.tasks.splits import load_task_data

PRICE_IN, PRICE_OUT = 1.0, 10.0  # USD per 1M tokens
USAGE = {"prompt_tokens": 100, "completion_tokens": 50}  # what the stand-in reports per call
CALL_USD = (100 * PRICE_IN + 50 * PRICE_OUT) / 1e6  # $0.0006
KEY = "sk-priced-stand-in-0123456789abcdef"


def _yes(req: dict, i: int):
    return reply_text('{"answer": "yes"}', **USAGE)


def _models_json(folder: Path, url: str) -> None:
    (folder / "models.json").write_text(json.dumps({"models": [{
        "key": "priced", "provider": "openai_compatible", "model_id": "priced", "kind": "api", "api_base": url,
        "api_key_env": "PRICED_KEY", "price_in": PRICE_IN, "price_out": PRICE_OUT, "max_tokens": 100,
        "request_timeout_s": 5.0}]}))


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def priced(tmp_path, monkeypatch):
    with ScriptedOpenAI(_yes) as server:
        _models_json(tmp_path, server.url)
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("PRICED_KEY", KEY)
        config = load_config()
        task = get_task("analysis", config)
        data = load_task_data(task, resolve_source("builtin", config))
        yield server, config, task, data, tmp_path / "results"


def _unit(task, data, results: Path, n: int) -> EvalUnit:
    return EvalUnit("baseline", task, data, data.eval_subset(n), task.program(),
                    results / "api_baseline_analysis_priced.csv", {"kind": "baseline"})


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_running_unit_stops_at_the_cap_keeps_its_work_and_resumes(priced, concurrency):
    server, config, task, data, results = priced
    n = min(8, len(data.eval))
    cap = 3 * CALL_USD + 0.0001  # room for a few calls, not for all of them
    session = Sessions(config, SessionOptions(adapter="json", cache=False, concurrency=concurrency,
                                              max_cost=cap)).session("priced")
    worst = session.lm.worst_case_usd((), {"messages": [{"role": "user", "content": "x" * 10}]})
    assert worst > CALL_USD  # the reservation is an upper bound of what the stand-in charges
    unit = _unit(task, data, results, n)
    with pytest.raises(SpendStopped) as stopped:
        run_unit(unit, session, results_dir=results, force=False, run_ctx={}, progress=False)
    assert str(stopped.value).startswith(f"spending cap reached: --max-cost ${cap:g}")
    sent = len(server.requests)
    spent = session.spend.spent
    assert spent == pytest.approx(sent * CALL_USD) and spent <= cap  # never past the cap, even with 3 in flight
    assert 1 <= sent < n
    rows = _rows(unit.csv_path)
    done = [r for r in rows if not r["error"]]
    refused = [r for r in rows if r["error"]]
    assert len(done) == sent and all(float(r["cost_usd"]) == pytest.approx(CALL_USD) for r in done)
    assert refused and all("spending cap reached" in r["error"] for r in refused)
    assert len(rows) < n or concurrency > 1  # examples not started are not recorded: the rerun does them
    meta = UnitMeta.read(meta_path(unit.csv_path))
    assert meta.status == "stopped"
    assert meta.spend == {"max_cost_usd": cap, "run_spent_usd": pytest.approx(spent), "stopped_at_cap": True}
    # A second unit in the same run does not start at all.
    other = EvalUnit("baseline", task, data, data.eval_subset(n), task.program(),
                     results / "api_baseline_analysis_priced_2.csv", {"kind": "baseline"})
    with pytest.raises(SpendStopped, match="not started"):
        run_unit(other, session, results_dir=results, force=False, run_ctx={}, progress=False)
    assert len(server.requests) == sent and not other.csv_path.exists()
    # Rerun with a higher cap: only the examples not done are requested, and the unit completes.
    again = Sessions(config, SessionOptions(adapter="json", cache=False, concurrency=concurrency,
                                            max_cost=1.0)).session("priced")
    summary = run_unit(unit, again, results_dir=results, force=False, run_ctx={}, progress=False)
    assert summary.n == n and summary.errors == 0
    assert len(server.requests) == n  # each example requested exactly once over both runs
    meta = UnitMeta.read(meta_path(unit.csv_path))
    assert meta.status == "complete" and meta.spend["stopped_at_cap"] is False
    assert journal_path(unit.csv_path).is_file()


def test_no_cap_no_guard_and_an_unpriced_model_is_never_stopped(priced):
    server, config, task, data, results = priced
    session = Sessions(config, SessionOptions(adapter="json", cache=False, concurrency=2)).session("priced")
    assert session.spend is None
    run_unit(_unit(task, data, results, 3), session, results_dir=results, force=False, run_ctx={}, progress=False)
    assert UnitMeta.read(meta_path(results / "api_baseline_analysis_priced.csv")).spend == {}


def _baseline_cli(results: Path, *more: str) -> list[str]:
    return ["src.run_baseline_v2", "--models", "priced", "--tasks", "analysis", "--data", "builtin", "--adapter",
            "json", "--results-dir", str(results), "--no-cache", *more]


def test_an_over_budget_run_is_refused_before_any_call(tmp_path):
    with ScriptedOpenAI(_yes) as server:
        _models_json(tmp_path, server.url)
        r = run_cli(_baseline_cli(tmp_path / "results", "--limit", "5", "--max-cost", "0.0001"), cwd=tmp_path,
                    env={"PRICED_KEY": KEY})
        assert server.requests == []
    assert r.returncode == 2, r.stderr[-2000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: --max-cost $0.0001: the projected spend is $")
    assert "nothing was run" in errors[0] and "Traceback" not in r.stderr
    assert not list((tmp_path / "results").glob("*.csv")) if (tmp_path / "results").exists() else True


def test_a_run_within_budget_stops_at_the_cap_and_exits_non_zero(tmp_path):
    """The projection (tokens estimated from the examples' text) is under the cap, the real usage is not: the run
    starts, is stopped by the metering, says so in one line, and a rerun with a higher cap completes it."""
    def pricey(req: dict, i: int):
        return reply_text('{"answer": "yes"}', prompt_tokens=2000, completion_tokens=50)

    with ScriptedOpenAI(pricey) as server:
        _models_json(tmp_path, server.url)
        results = tmp_path / "results"
        r = run_cli(_baseline_cli(results, "--limit", "6", "--max-cost", "0.006", "--concurrency", "1"),
                    cwd=tmp_path, env={"PRICED_KEY": KEY})
        first = len(server.requests)
        assert r.returncode == 1, r.stderr[-2000:]
        assert "spending cap reached: --max-cost $0.006" in r.stderr and "Traceback" not in r.stderr
        assert 1 <= first < 6
        meta = UnitMeta.read(results / "api_baseline_analysis_priced.meta.json")
        assert meta.status == "stopped" and meta.spend["max_cost_usd"] == 0.006
        assert meta.spend["run_spent_usd"] <= 0.006
        r = run_cli(_baseline_cli(results, "--limit", "6", "--max-cost", "1"), cwd=tmp_path, env={"PRICED_KEY": KEY})
        assert r.returncode == 0, r.stderr[-2000:]
        assert len(server.requests) == 6
    assert KEY not in "".join(p.read_text(errors="ignore") for p in results.rglob("*") if p.is_file())


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_study_over_its_max_cost_is_refused_before_any_stage(tmp_path, executor):
    """With either executor: the Ray executor's cluster-wide cap (src.scheduling.ray_spend) is refused the same way,
    before the cluster is even joined (tests/test_ray_executor.py stops a running one at its cap)."""
    with ScriptedOpenAI(_yes) as server:
        _models_json(tmp_path, server.url)
        study = tmp_path / "study.yaml"
        study.write_text("name: capped\nreferences: [priced]\ntasks: analysis\nlimit: 5\ndata: builtin\n"
                         "max_cost: 0.00001\n")
        r = run_cli(["src.experiment", "--config", str(study), "--phases", "baseline", "--results-dir",
                     str(tmp_path / "results"), "--no-cache", "--executor", executor], cwd=tmp_path,
                    env={"PRICED_KEY": KEY, "RAY_ADDRESS": "127.0.0.1:9"})
        assert server.requests == []
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert "error: --max-cost $1e-05: the projected spend is $" in r.stderr
    assert "=== stage" not in r.stdout


def test_a_tipping_point_study_over_the_cap_is_refused_before_any_call(tmp_path):
    with ScriptedOpenAI(_yes) as server:
        _models_json(tmp_path, server.url)
        r = run_cli(["src.tipping_point.runner", "--models", "priced", "--tasks", "analysis", "--data", "builtin",
                     "--limit", "4", "--n", "0,2", "--seeds", "10", "--results-dir", str(tmp_path / "results"),
                     "--no-cache", "--max-cost", "0.00001"], cwd=tmp_path, env={"PRICED_KEY": KEY})
        assert server.requests == []
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert "error: --max-cost $1e-05: the projected spend is $" in r.stderr and "Traceback" not in r.stderr
    assert "projected spend priced x optimizing analysis (student)" in r.stdout


def test_an_optimization_sidecar_records_the_cap_and_the_run_spend(tmp_path):
    from loopback import chat_reply

    def answer(req: dict, i: int):
        reply = chat_reply(req, "yes")
        reply.prompt_tokens, reply.completion_tokens = USAGE["prompt_tokens"], USAGE["completion_tokens"]
        return reply

    with ScriptedOpenAI(answer) as server:
        _models_json(tmp_path, server.url)
        results = tmp_path / "results"
        r = run_cli(["src.run_optimization", "--models", "priced", "--tasks", "analysis", "--data", "builtin",
                     "--preset", "quick", "--seeds", "10", "--adapter", "chat", "--results-dir", str(results),
                     "--no-cache", "--max-cost", "5"], cwd=tmp_path, env={"PRICED_KEY": KEY}, timeout=600)
        calls = len(server.requests)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    meta = json.loads((results / "optimized_programs" / "priced_analysis_mipro_v2.meta.json").read_text())
    assert meta["spend"]["max_cost_usd"] == 5 and meta["spend"]["stopped_at_cap"] is False
    # every request the server answered was metered against the cap at the registry's prices
    assert meta["spend"]["run_spent_usd"] == pytest.approx(calls * CALL_USD, rel=1e-6)


def test_a_study_projects_every_attempt_of_its_repeats_and_only_what_is_left(tmp_path):
    """The study's refusal check projects what the run will request: every attempt of --repeats (it projected one
    per example, a third of a --repeats 3 run's spend), and on a rerun only the attempts its journals do not hold."""
    with ScriptedOpenAI(_yes) as server:
        _models_json(tmp_path, server.url)
        study = tmp_path / "study.yaml"
        study.write_text("name: capped\nreferences: [priced]\ntasks: analysis\nlimit: 5\ndata: builtin\n")

        def run(*more: str):
            r = run_cli(["src.experiment", "--config", str(study), "--phases", "baseline", "--results-dir",
                         str(tmp_path / "results"), "--no-cache", "--adapter", "json", "--max-cost", "1", *more],
                        cwd=tmp_path, env={"PRICED_KEY": KEY})
            assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
            return r.stdout

        first = run("--repeats", "3")
        assert "projected spend priced x analysis baseline (15 attempts to do): 15 calls" in first
        assert len(server.requests) == 15
        again = run("--repeats", "3")
        assert "projected spend priced x" not in again and "projected spend: $0.0000" in again
        assert len(server.requests) == 15  # resumed: nothing left to request
        more = run("--repeats", "4")  # a larger k extends the unit by its new attempts only
        assert "(5 attempts to do): 5 calls" in more and len(server.requests) == 20
        forced = run("--repeats", "4", "--force", "--dry-run")
        assert "(20 attempts to do): 20 calls" in forced


def test_a_request_that_fits_beside_the_spend_waits_for_the_worst_cases_in_flight_instead_of_stopping():
    """Reservations are worst cases (all of max_tokens), usually far above what a request costs: a request that
    would fit beside what was spent waits for the requests in flight to settle rather than stopping the run (which
    stopped a 2-in-flight gpt-4o run at 5% of its cap); only the spend itself stops it."""
    import threading
    import time

    from src.backends.metering import SpendCap, SpendCapReached

    cap = SpendCap(10.0)
    cap.reserve(4.0, "m")
    cap.reserve(4.0, "m")  # 8 in flight
    got = threading.Event()
    waiter = threading.Thread(target=lambda: (cap.reserve(4.0, "m"), got.set()))
    waiter.start()
    time.sleep(0.2)
    assert not got.is_set() and not cap.reached  # waiting, not refused
    cap.add(1.0)
    cap.release(4.0)  # one settled at 1 of its worst case 4: 1 spent + 4 in flight + 4 fits under 10
    waiter.join(5)
    assert got.is_set() and cap.reserved == 8.0
    cap.add(5.0)
    cap.release(4.0)
    cap.add(1.0)
    cap.release(4.0)  # 7 spent, nothing in flight: a worst case of 4 no longer fits beside the spend
    with pytest.raises(SpendCapReached, match=r"\$7.0000 spent"):
        cap.reserve(4.0, "m")
    assert cap.reached
    with pytest.raises(SpendCapReached):  # once reached, nothing new starts, even what would fit
        cap.reserve(0.5, "m")


def test_concurrent_requests_never_spend_past_the_cap_and_none_waits_forever():
    """Generated cases: 8 threads, random worst cases and real costs (<= the worst case) and durations, random caps;
    the spend never passes the cap, every thread ends (served or refused), and the cap is reached only when a
    request's worst case no longer fits beside what was spent."""
    import random
    import threading
    import time

    from src.backends.metering import SpendCap, SpendCapReached

    rng = random.Random(7)
    for _ in range(40):
        cap = SpendCap(rng.uniform(1.0, 30.0))
        refused: list[tuple[float, float]] = []

        def worker(seed: int) -> None:
            r = random.Random(seed)
            for _ in range(6):
                worst = r.uniform(0.5, 5.0)
                try:
                    cap.reserve(worst, "m")
                except SpendCapReached:
                    refused.append((cap.spent, worst))
                    return
                time.sleep(r.uniform(0, 0.004))
                cap.add(worst * r.uniform(0.05, 1.0))
                cap.release(worst)

        threads = [threading.Thread(target=worker, args=(rng.random(),)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert not any(t.is_alive() for t in threads), "a reservation waited forever"
        assert cap.spent <= cap.cap_usd + 1e-9 and cap.reserved == pytest.approx(0.0, abs=1e-9)
        # the refusal that reached the cap was one whose worst case did not fit beside the spend (the others were
        # refused because it was reached; the spend only grows, so the recorded spend is at least what it saw)
        assert not refused or any(spent + worst > cap.cap_usd for spent, worst in refused)

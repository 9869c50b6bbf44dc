"""The Ray executor on a real local 2-node cluster (ray.cluster_utils.Cluster, each node with its own endpoint
resource): placement by resource, the same result files as the local scheduler, and a worker killed mid-unit
retried without a duplicate record. One cluster for the module; num_cpus kept small."""

from __future__ import annotations

import csv
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from loopback import ScriptedOpenAI, chat_reply

ray = pytest.importorskip("ray")

from ray.cluster_utils import Cluster  # noqa: E402

from src.backends.endpoints import REGISTRY  # noqa: E402
from src.consolidation.analysis import Options  # noqa: E402
from src.backends.session import Sessions, SessionOptions  # noqa: E402
from src.evaluation.matrix import DataCache  # noqa: E402
from src.registry import ModelSpec, load_config  # noqa: E402
from src.results.naming import journal_path  # noqa: E402
from src.results.provenance import run_context  # noqa: E402
from src.scheduling.local import LocalExecutor  # noqa: E402
from src.scheduling.ray_executor import RayExecutor, endpoint_resource  # noqa: E402
from src.scheduling.study import StudySettings, build_graph  # noqa: E402
from src.tasks import get_task  # noqa: E402


USAGE = {"prompt_tokens": 10, "completion_tokens": 5}  # what both stand-ins report per call (the spend test sets it)


def _answer(req) -> object:
    reply = chat_reply(req, "1")
    reply.prompt_tokens, reply.completion_tokens = USAGE["prompt_tokens"], USAGE["completion_tokens"]
    return reply


class _Hold:
    """Answers at once, except that the `hold_at`-th request (0-based) waits until released."""

    def __init__(self):
        self.hold_at: int | None = None
        self.holding = threading.Event()
        self.release = threading.Event()

    def __call__(self, req, i):
        if self.hold_at is not None and i == self.hold_at:
            self.holding.set()
            self.release.wait(60)
        return _answer(req)


@pytest.fixture(scope="module")
def cluster():
    hold = _Hold()
    with ScriptedOpenAI(lambda req, i: _answer(req)) as a, ScriptedOpenAI(hold) as b:
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        node_a = c.add_node(num_cpus=1, resources={endpoint_resource(a.url): 4})
        node_b = c.add_node(num_cpus=1, resources={endpoint_resource(b.url): 4})
        c.wait_for_nodes()
        os.environ["RAY_ADDRESS"] = c.address
        try:
            yield {"a": a, "b": b, "hold": hold, "node_a": node_a.node_id, "node_b": node_b.node_id,
                   "address": c.address}
        finally:
            os.environ.pop("RAY_ADDRESS", None)
            ray.shutdown()
            c.shutdown()


PRICE_IN, PRICE_OUT = 1.0, 10.0  # USD per 1M tokens


def _graph(tmp: Path, servers, executor_kind: str, address: str | None, limit: int, *, repeats: int = 1,
           priced: bool = False, max_cost: float | None = None, results: Path | None = None):
    """A baseline study of one model per node (math, analysis) - priced stand-ins under --max-cost when `priced` -
    with the executor that runs it."""
    REGISTRY.reset()
    config = load_config(tmp)
    keys = ["priced-a", "priced-b"] if priced else ["ray-a", "ray-b"]
    for key, server in zip(keys, (servers["a"], servers["b"])):
        config = config.with_model(ModelSpec(key, "openai_compatible", key, "api" if priced else "local",
                                             api_base=server.url, json_fallback=False, max_tokens=100,
                                             price_in=PRICE_IN if priced else 0.0,
                                             price_out=PRICE_OUT if priced else 0.0))
    results = results or tmp / f"results-{executor_kind}"
    sessions = Sessions(config, SessionOptions(adapter="chat", concurrency=2 if priced else 1, cache=False,
                                               max_cost=max_cost))
    stages = ["baseline"] if priced else ["baseline", "consolidate"]
    settings = StudySettings(students=keys, references=[], teacher=None,
                             tasks=[get_task("math", config), get_task("analysis", config)], data_mode="builtin",
                             results_dir=results, limit=limit, reference_limit=limit, optimizer="mipro_v2",
                             preset="quick", seeds=[0], train_size=None, dev_size=None, adapter="chat", force=False,
                             stages=stages, config=config, repeats=repeats,
                             consolidate_opts=Options(results, results / "golden", n_boot=200))
    graph = build_graph(settings, sessions, DataCache(config, "builtin"), run_context())
    if executor_kind == "ray":
        executor = RayExecutor(address, report_every_s=0)
        settings.evaluator = executor.evaluator(config, sessions)
    else:
        executor = LocalExecutor(report_every_s=0)
    return graph, executor, sessions, results


def _run(tmp: Path, servers, executor_kind: str, address: str | None = None, limit: int = 3, repeats: int = 1):
    graph, executor, _, results = _graph(tmp, servers, executor_kind, address, limit, repeats=repeats)
    out = executor.run(graph)
    assert all(r.status in ("ran", "reused") for r in out.values()), {k: r.message for k, r in out.items()}
    return results, executor


def _rows(path: Path):
    with path.open(newline="", encoding="utf-8") as fh:
        return [{k: v for k, v in r.items() if k not in ("latency_ms", "timestamp")} for r in csv.DictReader(fh)]


def test_units_run_on_the_node_of_their_endpoint_and_match_the_local_scheduler(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("DSPY_CACHEDIR", str(tmp_path / "cache"))
    local, _ = _run(tmp_path, cluster, "local")
    remote, executor = _run(tmp_path, cluster, "ray", cluster["address"])
    assert executor.placements["ray-a/math/baseline"] == cluster["node_a"]
    assert executor.placements["ray-b/analysis/baseline"] == cluster["node_b"]
    names = sorted(p.name for p in local.glob("*.csv"))
    assert len(names) == 4 and names == sorted(p.name for p in remote.glob("*.csv"))
    for name in names:
        assert _rows(local / name) == _rows(remote / name), name
    for name in ("summary_scores.csv", "summary_counts.csv"):  # the same golden files
        assert (local / "golden" / name).read_text() == (remote / "golden" / name).read_text(), name


def _evaluate_workers() -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if b"NodeEvaluator" in (d / "cmdline").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def test_a_worker_killed_mid_unit_is_retried_without_duplicates(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("DSPY_CACHEDIR", str(tmp_path / "cache"))
    hold = cluster["hold"]
    hold.hold_at = len(cluster["b"].requests) + 2  # the third request ray-b's units send from now on
    killed: list[int] = []

    def killer():
        assert hold.holding.wait(120)
        for _ in range(50):  # the worker is found by its Ray process title
            pids = _evaluate_workers()
            if pids:
                break
            time.sleep(0.1)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        time.sleep(1.0)
        hold.release.set()

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    results, _ = _run(tmp_path, cluster, "ray", cluster["address"], limit=4)
    t.join(10)
    assert killed, "no Ray worker was found to kill"
    for path in results.glob("*ray-b*.csv"):
        ids = [r["example_id"] for r in _rows(path)]
        assert len(ids) == 4 and len(set(ids)) == 4, (path.name, ids)
        lines = [x for x in journal_path(path).read_text().splitlines() if '"example_id"' in x]
        assert len(lines) == 4, (path.name, lines)  # each example journaled once, none twice


def test_node_actors_stay_warm_across_evaluators(cluster, tmp_path):
    """A second evaluator of the same driver (another graph, a later study) finds each node's actor running: no new
    interpreter to start and import on every node (Ray ends an actor once no handle on it is left)."""
    import gc

    config = load_config(tmp_path).with_model(ModelSpec("ray-a", "openai_compatible", "ray-a", "local",
                                                        api_base=cluster["a"].url, json_fallback=False))
    sessions = Sessions(config, SessionOptions(adapter="chat", concurrency=1, cache=False))

    def actor_pid() -> int:
        evaluator = RayExecutor(cluster["address"], report_every_s=0).evaluator(config, sessions)
        return ray.get(evaluator.actor("ray-a").__ray_call__.remote(lambda self: os.getpid()), timeout=120)

    first = actor_pid()
    gc.collect()
    time.sleep(1.0)  # time enough for Ray to end an actor whose last handle is gone
    assert actor_pid() == first
    os.kill(first, 0)  # still running


def test_repeats_on_the_cluster_match_the_local_scheduler(cluster, tmp_path, monkeypatch):
    """--repeats 2: every attempt evaluated on the node (its own LM per attempt, as run_unit asks), journaled once
    on the driver, the same CSVs as the local scheduler."""
    monkeypatch.setenv("DSPY_CACHEDIR", str(tmp_path / "cache"))
    local, _ = _run(tmp_path, cluster, "local", repeats=2, limit=2)
    remote, _ = _run(tmp_path, cluster, "ray", cluster["address"], repeats=2, limit=2)
    names = sorted(p.name for p in local.glob("*.csv"))
    assert len(names) == 4 and names == sorted(p.name for p in remote.glob("*.csv"))
    for name in names:
        rows = _rows(remote / name)
        assert rows == _rows(local / name), name
        assert sorted((r["example_id"], r["repeat"]) for r in rows) == sorted(
            (i, str(k)) for i in {r["example_id"] for r in rows} for k in (0, 1)), name
        assert len(journal_path(remote / name).read_text().splitlines()) == 1 + len(rows)  # header + each once


def _sent(cluster) -> int:
    return len(cluster["a"].requests) + len(cluster["b"].requests)


def test_the_spending_cap_is_shared_by_the_cluster_and_stops_it(cluster, tmp_path, monkeypatch):
    """Two priced stand-ins, one on each node, under one --max-cost: every request anywhere reserves its worst case
    against the one cap (an actor on the driver's node), so the run never spends past it; units stop at the cap
    keeping what was done, and a rerun with a higher cap completes them, each example requested exactly once."""
    from src.results.naming import meta_path
    from src.results.schema import UnitMeta
    from src.scheduling.ray_spend import ClusterSpendCap

    monkeypatch.setenv("DSPY_CACHEDIR", str(tmp_path / "cache"))
    # every call uses all of max_tokens (100): its real cost is close to, and never above, its reservation
    monkeypatch.setitem(USAGE, "completion_tokens", 100)
    call_usd = (USAGE["prompt_tokens"] * PRICE_IN + 100 * PRICE_OUT) / 1e6
    cap = 5 * call_usd  # a few calls, not the 16 of the study
    limit, before = 4, _sent(cluster)
    graph, executor, sessions, results = _graph(tmp_path, cluster, "ray", cluster["address"], limit, priced=True,
                                                max_cost=cap)
    assert isinstance(sessions.spend, ClusterSpendCap)
    out = executor.run(graph)
    sent = _sent(cluster) - before
    spent = sessions.spend.spent
    assert 1 <= sent < 2 * 2 * limit
    assert spent == pytest.approx(sent * call_usd) and spent <= cap  # never past the cap, across both nodes
    stopped = [r for r in out.values() if r.status == "failed"]
    assert stopped and all(r.message.startswith(f"spending cap reached: --max-cost ${cap:g}") for r in stopped)
    metas = [UnitMeta.read(meta_path(p)) for p in results.glob("*.csv")]
    assert metas and all(m.spend["max_cost_usd"] == cap for m in metas)
    assert any(m.status == "stopped" for m in metas)
    assert all(m.spend["stopped_at_cap"] for m in metas if m.status == "stopped")
    done = [r for p in results.glob("*.csv") for r in _rows(p) if not r["error"]]
    assert len(done) == sent  # every request sent is a kept record; refused ones are errors, redone by a rerun
    # Rerun under a higher cap: only what was not done is requested, and every unit completes.
    graph, executor, sessions, results = _graph(tmp_path, cluster, "ray", cluster["address"], limit, priced=True,
                                                max_cost=1.0, results=results)
    out = executor.run(graph)
    assert all(r.status in ("ran", "reused") for r in out.values()), {k: r.message for k, r in out.items()}
    assert _sent(cluster) - before == 2 * 2 * limit  # each example requested exactly once over both runs
    for path in results.glob("*.csv"):
        rows = _rows(path)
        assert len(rows) == limit and not any(r["error"] for r in rows), path.name
        assert UnitMeta.read(meta_path(path)).status == "complete"


def test_a_node_that_would_generate_under_other_settings_evaluates_nothing(cluster, tmp_path):
    """The unit's identity (its journal header, its sidecar) records the driver LM's settings: a node whose LM would
    send other ones (here the driver's temperature changed after its session opened) refuses, in one line, before
    any request."""
    from src.errors import UserError
    from src.evaluation.engine import EngineSettings

    graph, executor, sessions, _ = _graph(tmp_path, cluster, "ray", cluster["address"], 2)
    evaluator = executor.evaluator(sessions.config, sessions)
    session = sessions.unit_session("ray-a", adapter="chat")
    session.lm.kwargs["temperature"] = 0.9
    task = get_task("analysis", sessions.config)
    examples = DataCache(sessions.config, "builtin").get(task).eval_subset(2)
    before, got = len(cluster["a"].requests), []
    with pytest.raises(UserError) as exc:
        evaluator(task.program(), examples, task, session.spec, session.lm, session.adapter,
                  EngineSettings(concurrency=1, progress=False), "x", "baseline", got.append)
    assert "other generation settings" in str(exc.value) and "\n" not in str(exc.value)
    assert got == [] and len(cluster["a"].requests) == before


def test_a_study_run_on_the_cluster_with_repeats_stops_at_its_cap_and_resumes(cluster, tmp_path, monkeypatch):
    """./run_experiment.sh's path (src.experiment --executor ray) with --repeats 2 and --max-cost, joining the
    cluster by RAY_ADDRESS: the run starts (its projection is under the cap), is stopped by the shared cap in one
    line with exit status 1, and a rerun under a higher cap completes every attempt, each requested once."""
    import json

    from conftest import run_cli

    monkeypatch.setitem(USAGE, "completion_tokens", 100)
    monkeypatch.setitem(USAGE, "prompt_tokens", 3000)  # more than projected: the projection lets the run start
    (tmp_path / "models.json").write_text(json.dumps({"models": [
        {"key": key, "provider": "openai_compatible", "model_id": key, "kind": "api", "api_base": server.url,
         "price_in": PRICE_IN, "price_out": PRICE_OUT, "max_tokens": 100}
        for key, server in (("priced-a", cluster["a"]), ("priced-b", cluster["b"]))]}))
    study = tmp_path / "study.yaml"
    study.write_text("name: cluster-capped\nreferences: [priced-a, priced-b]\ntasks: analysis\nlimit: 3\n"
                     "data: builtin\n")
    results = tmp_path / "results"

    def run(cap: str):
        return run_cli(["src.experiment", "--config", str(study), "--phases", "baseline", "--results-dir",
                        str(results), "--no-cache", "--executor", "ray", "--repeats", "2", "--max-cost", cap],
                       cwd=tmp_path, env={"RAY_ADDRESS": cluster["address"]}, timeout=300)

    before = _sent(cluster)
    r = run("0.012")
    first = _sent(cluster) - before
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    assert "spending cap reached: --max-cost $0.012" in r.stdout + r.stderr and "Traceback" not in r.stderr
    assert 1 <= first < 2 * 3 * 2
    r = run("10")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert _sent(cluster) - before == 2 * 3 * 2  # every attempt requested exactly once over both runs
    for path in results.glob("*analysis*.csv"):
        rows = _rows(path)
        assert sorted((x["example_id"], x["repeat"]) for x in rows) == sorted(
            (i, k) for i in {x["example_id"] for x in rows} for k in ("0", "1")) and len(rows) == 6, path.name
        assert not any(x["error"] for x in rows)

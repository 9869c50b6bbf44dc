"""The study scheduler's speed, measured in one run against latency-bound loopback endpoints.

Six students (one OpenAI-protocol loopback endpoint each, answering every request after --delay-ms and admitting
--admit requests at once, the rest queued) x three tasks x --limit examples, baseline + optimized-eval stages (the
optimized programs are the tasks' own programs saved as each (model, task)'s program, so the eval stage has real
files to load; optimization itself is not timed here):

1. study_speedup: the study scheduler (every unit whose inputs exist at once, per-endpoint budgets) versus one
   unit at a time (the same graph, the same engine, --max-units 1), i.e. what the stages did before. Target >= 5.
2. ray_vs_local: the Ray executor on a local 2-node cluster (ray.cluster_utils.Cluster; each node holds the
   endpoint resources of three students) versus the study scheduler. Target >= 0.8. "n/a" without Ray installed.
3. multi_endpoint: one model's six units served by three endpoints versus one. Target >= 2.5.

Every run starts from an empty results folder with DSPy's cache off, so every example is a real request.
The last line reads `study_speedup=<X> ray_vs_local=<Y> multi_endpoint=<Z>`.
Usage: python benchmarks/bench_study.py [--limit 20] [--delay-ms 300] [--admit 8]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DSPY_CACHEDIR", tempfile.mkdtemp(prefix="ia-bench-cache-"))

from src.backends.endpoints import REGISTRY  # noqa: E402
from src.backends.session import Sessions, SessionOptions  # noqa: E402
from src.evaluation.matrix import DataCache  # noqa: E402
from src.optimization.search import quiet_optimizer_logs  # noqa: E402
from src.registry import ModelSpec, load_config  # noqa: E402
from src.results.naming import program_path, sidecar_path  # noqa: E402
from src.results.provenance import run_context  # noqa: E402
from src.results.schema import ProgramMeta  # noqa: E402
from src.scheduling.local import LocalExecutor  # noqa: E402
from src.scheduling.study import StudySettings, build_graph  # noqa: E402
from src.tasks import get_task  # noqa: E402

TASKS = ("math", "analysis", "qa")
MODELS = 6


class LatencyEndpoint:
    """An OpenAI-protocol server on 127.0.0.1 that admits `admit` requests at once and answers each after
    `delay_s` with a well-formed chat-adapter reply (every requested field "1")."""

    def __init__(self, delay_s: float, admit: int):
        gate = threading.BoundedSemaphore(admit)
        self.served = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._send(json.dumps({"object": "list", "data": [{"id": "bench", "object": "model"}]}).encode())

            def do_POST(self):
                req = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                with gate:
                    time.sleep(delay_s)
                    outer.served += 1
                text = next((m.get("content") for m in reversed(req.get("messages") or [])
                             if m.get("role") == "user"), "") or ""
                names = [n for n in dict.fromkeys(re.findall(r"\[\[ ## (\w+) ## \]\]", str(text).split(
                    "Respond with")[-1])) if n != "completed"] or ["answer"]
                content = "".join(f"[[ ## {n} ## ]]\n1\n\n" for n in names) + "[[ ## completed ## ]]"
                self._send(json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "bench",
                                       "choices": [{"index": 0, "finish_reason": "stop",
                                                    "message": {"role": "assistant", "content": content}}],
                                       "usage": {"prompt_tokens": 10, "completion_tokens": 5,
                                                 "total_tokens": 15}}).encode())

            def _send(self, body: bytes):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.request_queue_size = 128
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def spec(key: str, urls: list[str], admit: int) -> ModelSpec:
    return ModelSpec(key, "openai_compatible", "bench", "local", api_base=urls[0] if len(urls) == 1 else tuple(urls),
                     endpoint_concurrency=admit, json_fallback=False, default_adapter="chat")


def save_programs(results_dir: Path, models: list[str], config) -> None:
    """Each task's own program saved as every model's optimized program, with the sidecar the eval stage reads."""
    for m in models:
        for t in TASKS:
            path = program_path(results_dir, m, t, "mipro_v2")
            path.parent.mkdir(parents=True, exist_ok=True)
            program = get_task(t, config).program()
            program.save(str(path))
            ProgramMeta(model=m, task=t, optimizer="mipro_v2", status="ok", adapter="chat", chosen_seed=0,
                        dev_score=0.0, module=type(program).__name__).write(sidecar_path(path))


def run_study(config, models: list[str], limit: int, max_units: int, concurrency: int, ray_address=None) -> float:
    """Baseline + optimized eval of `models` x TASKS in a fresh results folder; wall seconds."""
    REGISTRY.reset()
    results_dir = Path(tempfile.mkdtemp(prefix="ia-bench-study-"))
    save_programs(results_dir, models, config)
    sessions = Sessions(config, SessionOptions(concurrency=concurrency, cache=False))
    settings = StudySettings(students=models, references=[], teacher=None,
                             tasks=[get_task(t, config) for t in TASKS], data_mode="mirror",
                             results_dir=results_dir, limit=limit, reference_limit=limit, optimizer="mipro_v2",
                             preset="quick", seeds=[0], train_size=None, dev_size=None, adapter="chat", force=False,
                             stages=["baseline", "eval"], config=config)
    data = DataCache(config, "mirror")
    for t in settings.tasks:
        data.get(t)  # loading data is not what is measured
    graph = build_graph(settings, sessions, data, run_context())
    executor = None
    if ray_address:
        from src.scheduling.ray_executor import RayExecutor

        executor = RayExecutor(ray_address, max_units=max_units, report_every_s=0)
        settings.evaluator = executor.evaluator(config, sessions)
    for m in models:
        sessions.session(m)  # LM objects made before the clock starts, as for every run
    t0 = time.perf_counter()
    results = (executor or LocalExecutor(max_units=max_units, report_every_s=0)).run(graph)
    wall = time.perf_counter() - t0
    failed = [(k, r.message) for k, r in results.items() if r.status == "failed"]
    if failed:
        raise SystemExit(f"benchmark units failed: {failed[:3]}")
    return wall


def _ray_cluster(endpoints: list[LatencyEndpoint], admit: int):
    """A local 2-node Ray cluster, each node holding the resources of half the endpoints; None without Ray."""
    try:
        from ray.cluster_utils import Cluster
    except ImportError:
        return None
    from src.scheduling.ray_executor import endpoint_resource

    half = len(endpoints) // 2
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    for group in (endpoints[:half], endpoints[half:]):
        # a unit takes one unit of its endpoint's resource: room for every unit of a model at once
        cluster.add_node(num_cpus=1, resources={endpoint_resource(e.url): 2 * len(TASKS) for e in group})
    cluster.wait_for_nodes()
    return cluster


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--delay-ms", type=float, default=300.0)
    ap.add_argument("--admit", type=int, default=8, help="requests each endpoint admits at once")
    args = ap.parse_args()
    if not os.environ.get("IA_DATA_DIR"):
        os.environ["IA_DATA_DIR"] = str(Path(__file__).resolve().parents[2] / "shared" / "datasets")
    import logging

    logging.getLogger("LiteLLM").setLevel(logging.WARNING)
    quiet_optimizer_logs(False)
    delay = args.delay_ms / 1000
    endpoints = [LatencyEndpoint(delay, args.admit) for _ in range(MODELS + 2)]
    config = load_config()
    keys = [f"bench-m{i}" for i in range(MODELS)]
    for i, k in enumerate(keys):
        config = config.with_model(spec(k, [endpoints[i].url], args.admit))
    config = config.with_model(spec("bench-multi", [e.url for e in endpoints[MODELS - 1:MODELS + 2]], args.admit))
    devnull = open(os.devnull, "w")
    real_err = sys.stderr
    sys.stderr = devnull  # per-unit lines and progress bars: the figures are what this prints
    try:
        one_at_a_time = run_study(config, keys, args.limit, 1, args.admit)
        scheduled = run_study(config, keys, args.limit, 32, args.admit)
        ray_note, ray_vs_local = "n/a (ray is not installed: pip install -r requirements/ray.txt)", None
        cluster = _ray_cluster(endpoints[:MODELS], args.admit)
        if cluster is not None:
            try:
                cold = run_study(config, keys, 2, 32, args.admit, cluster.address)  # starts each node's actors
                ray_wall = run_study(config, keys, args.limit, 32, args.admit, cluster.address)
            finally:
                import ray

                ray.shutdown()
                cluster.shutdown()
            ray_vs_local = scheduled / ray_wall
            ray_note = (f"{ray_wall:.1f}s on a local 2-node cluster (its actors already started: the first run, at "
                        f"limit 2, took {cold:.1f}s)")
        single = run_study(config, [keys[-1]], args.limit, 32, args.admit)
        multi = run_study(config, ["bench-multi"], args.limit, 32, args.admit)
    finally:
        sys.stderr = real_err
    n_units = 2 * MODELS * len(TASKS)
    print(f"{MODELS} students x {len(TASKS)} tasks x limit {args.limit}, baseline + optimized eval ({n_units} units); "
          f"endpoints answer after {args.delay_ms:g} ms, {args.admit} at once; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"  one unit at a time: {one_at_a_time:.1f}s; study scheduler: {scheduled:.1f}s; Ray executor: {ray_note}")
    print(f"  one model's 6 units: one endpoint {single:.1f}s; three endpoints {multi:.1f}s")
    y = "n/a" if ray_vs_local is None else f"{ray_vs_local:.2f}"
    print(f"study_speedup={one_at_a_time / scheduled:.2f} ray_vs_local={y} multi_endpoint={single / multi:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

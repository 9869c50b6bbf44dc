"""Engine speed, measured in one run: overhead vs a raw HTTP client, and concurrency vs sequential evaluation.

1. Overhead (compute-bound, the embedded llama.cpp server): the engine evaluates N examples; then the exact
   requests it sent (same messages, schema, max_tokens) are replayed by a bare concurrent httpx client at the same
   concurrency. X = throughput(engine) / throughput(raw). Runs alternate to cancel warm-up and prompt-cache order.
2. Concurrency (latency-bound, a loopback OpenAI-compatible server that answers after a fixed delay, standing in
   for a remote API): the engine at concurrency 8 vs one request at a time as the original study ran.
   Y = throughput(engine, 8) / throughput(sequential).

The last line reads `harness_vs_raw=<X> speedup_vs_sequential=<Y>`. Targets: X >= 0.95, Y >= 6.
Usage: python benchmarks/bench_engine.py [--n 24] [--concurrency 2] [--delay-ms 300] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["DSPY_CACHEDIR"] = tempfile.mkdtemp(prefix="ia-bench-cache-")

import httpx

from src.backends.session import ModelSession, SessionOptions, Sessions
from src.evaluation.engine import EngineSettings, evaluate
from src.registry import ModelSpec, load_config
from src.tasks import get_task
from src.tasks.sources import resolve_source
from src.tasks.splits import load_task_data


def _open(config, key: str, concurrency: int, adapter: str | None = None) -> ModelSession:
    """The model's session as a runner opens it, without the DSPy cache."""
    return Sessions(config, SessionOptions(adapter=adapter, concurrency=concurrency, cache=False)).session(key)


def _server_v1(session: ModelSession) -> str:
    """The OpenAI-protocol base URL the session's requests go to (the embedded engine keeps its own)."""
    engine = getattr(session.lm, "_engine_spec", None)
    return f"{engine.url}/v1" if hasattr(engine, "url") else session.lm.kwargs["api_base"]


def _examples(config, n: int):
    task = get_task("analysis", config)
    data = load_task_data(task, resolve_source("builtin", config, announce=False))
    pool = (data.eval + data.train)
    return task, [pool[i % len(pool)] for i in range(n)]


def _run_engine(session: ModelSession, task, examples, concurrency: int) -> float:
    t0 = time.perf_counter()
    records = evaluate(task.program(), examples, task, session.spec, session.lm, session.adapter,
                       EngineSettings(concurrency=concurrency, progress=False), "bench", "bench", lambda r: None)
    elapsed = time.perf_counter() - t0
    failed = [r for r in records if r.error]
    if failed:
        raise SystemExit(f"benchmark requests failed: {failed[0].error}")
    return elapsed


class _Recorder(BaseHTTPRequestHandler):
    """Forwards to the real server and keeps the exact request bytes the engine sent (capture pass only)."""

    upstream = ""
    bodies: list[bytes] = []
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append(raw)
        r = httpx.post(self.upstream + self.path.removeprefix("/v1"), content=raw,
                       headers={"Content-Type": "application/json"}, timeout=300)
        self.send_response(r.status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(r.content)))
        self.end_headers()
        self.wfile.write(r.content)

    def log_message(self, *args):
        pass


def _capture_requests(config, session: ModelSession, task, examples) -> list[bytes]:
    """The exact HTTP bodies the engine sends for these examples, recorded through a forwarding proxy."""
    _Recorder.upstream = _server_v1(session)
    _Recorder.bodies = []
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    proxy.daemon_threads = True
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    spec = ModelSpec("recorder", "openai_compatible", "smollm2-135m", "local", schema_decoding=True,
                     api_base=f"http://127.0.0.1:{proxy.server_port}/v1", max_tokens=session.spec.max_tokens,
                     default_adapter=session.adapter_name)
    rec = _open(config.with_model(spec), "recorder", 1)
    _run_engine(rec, task, examples, 1)
    proxy.shutdown()
    if len(_Recorder.bodies) != len(examples):
        raise SystemExit(f"captured {len(_Recorder.bodies)} requests for {len(examples)} examples")
    return list(_Recorder.bodies)


def _run_raw(url: str, bodies: list[bytes], concurrency: int) -> tuple[float, int]:
    with httpx.Client(timeout=300) as client:
        def send(body):
            r = client.post(url, content=body, headers={"Content-Type": "application/json"})
            r.raise_for_status()
            return r.json()["usage"]["completion_tokens"]

        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            tokens = sum(pool.map(send, bodies))
        return time.perf_counter() - t0, tokens


def overhead(config, n: int, concurrency: int, rounds: int) -> float:
    session = _open(config, "smollm2-135m", concurrency)
    task, examples = _examples(config, n)
    _run_engine(session, task, examples[:2], concurrency)  # warm-up: model pages, first-request setup
    url = f"{_server_v1(session)}/chat/completions"
    bodies = _capture_requests(config, session, task, examples)
    engine_t, raw_t = [], []
    for i in range(rounds):
        # Alternate who goes first: llama.cpp's prompt cache favours whoever follows the other.
        order = ("engine", "raw") if i % 2 == 0 else ("raw", "engine")
        for who in order:
            if who == "engine":
                engine_t.append(_run_engine(session, task, examples, concurrency))
                engine_tokens = sum(e["usage"]["completion_tokens"] for e in session.lm.history[-n:])
            else:
                elapsed, raw_tokens = _run_raw(url, bodies, concurrency)
                raw_t.append(elapsed)
    rounds_txt = " ".join(f"{t:.2f}" for t in engine_t) + " | raw " + " ".join(f"{t:.2f}" for t in raw_t)
    print(f"  per round (s): engine {rounds_txt}")
    e, r = statistics.median(engine_t), statistics.median(raw_t)
    print(f"overhead: {n} requests x {rounds} rounds at concurrency {concurrency} on the embedded server: "
          f"engine {n / e:.2f} req/s (median {e:.2f}s, {engine_tokens} tokens generated), "
          f"raw httpx {n / r:.2f} req/s (median {r:.2f}s, {raw_tokens} tokens generated)")
    return (n / e) / (n / r)


class _SlowAPI(BaseHTTPRequestHandler):
    delay_s = 0.3
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.delay_s)
        body = json.dumps({
            "id": "chatcmpl-bench", "object": "chat.completion", "created": int(time.time()), "model": "slow",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "{\"answer\": \"yes\"}"}}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def concurrency_speedup(config, n: int, delay_ms: int) -> float:
    _SlowAPI.delay_s = delay_ms / 1000
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowAPI)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    spec = ModelSpec("slow-api", "openai_compatible", "slow", "api", api_base=f"http://127.0.0.1:{server.server_port}/v1",
                     schema_decoding=True)
    config = config.with_model(spec)
    task, examples = _examples(config, n)
    times = {}
    for conc in (1, 8):
        session = _open(config, "slow-api", conc, adapter="json")
        times[conc] = _run_engine(session, task, examples, conc)
    server.shutdown()
    print(f"concurrency: {n} requests to a {delay_ms} ms loopback API: sequential {n / times[1]:.2f} req/s "
          f"({times[1]:.2f}s), engine at 8 {n / times[8]:.2f} req/s ({times[8]:.2f}s)")
    return times[1] / times[8]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=24)
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--delay-ms", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    config = load_config(Path(__file__).resolve().parents[1])
    x = overhead(config, args.n, args.concurrency, args.rounds)
    y = concurrency_speedup(config, max(args.n, 32), args.delay_ms)
    print(f"harness_vs_raw={x:.3f} speedup_vs_sequential={y:.2f}")


if __name__ == "__main__":
    main()

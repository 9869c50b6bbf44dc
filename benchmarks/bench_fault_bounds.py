"""How long a unit takes against a backend that never finishes answering: the measured bound of issue 12, item 3.

Two loopback OpenAI-compatible servers (tests/loopback.py) stand in for a broken endpoint:
- hang: accepts the request and never sends a byte. The request timeout (models.json request_timeout_s) ends each
  attempt; the retry policy makes 3 attempts with backoff; the example is then recorded as an error.
- trickle: sends the reply one byte at a time, each within the request timeout, so no attempt ever times out; the
  engine's per-example deadline (src.backends.retry.RetryPolicy.example_deadline_s) abandons the example.

A unit of N built-in BoolQ examples runs through the product's own run_unit with the default retry policy, at the
given concurrency; the unit fails (every example failed) and the wall time is printed beside the bound the policy
promises: ceil(N / concurrency) x the per-example bound.

Usage: python benchmarks/bench_fault_bounds.py [--n 8] [--concurrency 4] [--timeout 2] [--trickle-delay 0.5]
The last line reads `hang_wall_s=<A> hang_bound_s=<B> trickle_wall_s=<C> trickle_bound_s=<D>`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ["DSPY_CACHEDIR"] = tempfile.mkdtemp(prefix="ia-bench-cache-")

from loopback import HANG, Reply, ScriptedOpenAI  # noqa: E402

from src.backends.session import Sessions, SessionOptions  # noqa: E402
from src.errors import UserError  # noqa: E402
from src.evaluation.engine import example_deadline_s  # noqa: E402
from src.evaluation.unit import EvalUnit, run_unit  # noqa: E402
from src.registry import load_config  # noqa: E402
from src.tasks import get_task  # noqa: E402
from src.tasks.sources import resolve_source  # noqa: E402
from src.tasks.splits import load_task_data  # noqa: E402


def measure(reply: Reply, n: int, concurrency: int, timeout_s: float) -> tuple[float, float, float, str]:
    """(wall seconds for the unit, per-example hang bound, per-example deadline, the unit's failure line)."""
    work = Path(tempfile.mkdtemp(prefix="ia-bench-faults-"))
    with ScriptedOpenAI(lambda req, i: reply) as server:
        (work / "models.json").write_text(json.dumps({"models": [{
            "key": "broken", "provider": "openai_compatible", "model_id": "broken", "kind": "local",
            "api_base": server.url, "request_timeout_s": timeout_s}]}))
        os.chdir(work)
        config = load_config()
        session = Sessions(config, SessionOptions(adapter="json", cache=False, concurrency=concurrency)) \
            .session("broken")
        task = get_task("analysis", config)
        data = load_task_data(task, resolve_source("builtin", config))
        program = task.program()
        examples = (data.eval + data.train)[:n]
        unit = EvalUnit("baseline", task, data, examples, program, work / "results" / "local_baseline_x.csv",
                        {"kind": "baseline"})
        policy = session.lm.retry
        # A hang ends each attempt at the request timeout; the waits between attempts are at most
        # min(max_backoff, backoff * 2^k * 1.5).
        hang_bound = policy.attempts * policy.timeout_s + sum(
            min(policy.max_backoff_s, policy.backoff_s * 2 ** k * 1.5) for k in range(policy.attempts - 1))
        deadline = example_deadline_s(program, session.adapter, session.lm)
        t0 = time.perf_counter()
        try:
            run_unit(unit, session, results_dir=work / "results", force=False, run_ctx={}, progress=False)
            line = "(the unit did not fail)"
        except UserError as exc:
            line = str(exc)
        return time.perf_counter() - t0, hang_bound, deadline, line


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=8, help="examples in the unit")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--timeout", type=float, default=2.0, help="request_timeout_s of the broken model (models.json)")
    p.add_argument("--trickle-delay", type=float, default=0.5, help="seconds between the trickled reply's bytes")
    args = p.parse_args()
    waves = math.ceil(args.n / args.concurrency)

    wall, per_example, deadline, line = measure(HANG, args.n, args.concurrency, args.timeout)
    hang_bound = waves * per_example
    print(f"hang:    {args.n} examples, concurrency {args.concurrency}, request timeout {args.timeout:g} s -> "
          f"{wall:.1f} s (bound {waves} wave(s) x {per_example:.1f} s = {hang_bound:.1f} s)\n  {line}")

    trickle = Reply(content='{"answer": "yes"}', chunk_delay_s=args.trickle_delay)
    t_wall, _, deadline, t_line = measure(trickle, args.n, args.concurrency, args.timeout)
    t_bound = waves * deadline
    print(f"trickle: {args.n} examples, concurrency {args.concurrency}, one byte every {args.trickle_delay:g} s -> "
          f"{t_wall:.1f} s (bound {waves} wave(s) x the {deadline:g} s example deadline = {t_bound:.1f} s)\n  {t_line}")
    print(f"hang_wall_s={wall:.1f} hang_bound_s={hang_bound:.1f} trickle_wall_s={t_wall:.1f} "
          f"trickle_bound_s={t_bound:.1f}")


if __name__ == "__main__":
    main()

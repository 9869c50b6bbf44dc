"""Code-sandbox latency: HumanEval's 164 canonical solutions scored through the code task, one at a time and at
a given concurrency; reports the per-program wall time (median, p90, mean) and the pass count.

The last line reads `sandbox_ms_median=<M> sandbox_ms_p90=<P> passed=<k>/164 mode=<isolation mode>`.
Usage: python benchmarks/bench_sandbox.py [--concurrency 1] [--rounds 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.registry import load_config  # noqa: E402
from src.sandbox import isolation  # noqa: E402
from src.tasks import get_task  # noqa: E402
from src.tasks.domains.humaneval import HumanEvalPackageSource  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    task = get_task("code", load_config(Path(tempfile.mkdtemp(prefix="ia-bench-"))))
    records = HumanEvalPackageSource().records(task.spec.eval)
    examples = [task.example_from_record(r, i, "test") for i, r in enumerate(records)]
    mode = isolation().mode  # probe outside the timed loop

    def one(ex):
        t0 = time.perf_counter()
        s = task.score(ex, dict(ex.labels))
        return time.perf_counter() - t0, s.correct

    times: list[float] = []
    passed = 0
    wall0 = time.perf_counter()
    for _ in range(args.rounds):
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            out = list(pool.map(one, examples))
        times += [t for t, _ in out]
        passed = sum(ok for _, ok in out)
    wall = time.perf_counter() - wall0
    ms = sorted(t * 1000 for t in times)
    p90 = ms[int(0.9 * (len(ms) - 1))]
    print(f"programs={len(ms)} concurrency={args.concurrency} wall={wall:.1f}s "
          f"throughput={len(ms) / wall:.1f}/s mean_ms={statistics.mean(ms):.1f}")
    print(f"sandbox_ms_median={statistics.median(ms):.1f} sandbox_ms_p90={p90:.1f} passed={passed}/{len(examples)} "
          f"mode={mode}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Where a study's time goes, from its result files alone (no LM call): LM calls, input/output tokens, cache hits and
unit wall time per stage (baseline, optimization dev baselines, optimizer seeds, optimized eval) and output tokens per
task and arm. Used to profile the README's first command (issue 14); run it on any results folder:

    python benchmarks/profile_study.py results/            # or the --results-dir of a study run

Unit wall times are summed: under the study scheduler units overlap, so a stage's sum exceeds the run's wall clock.
Optimizer seeds count every call the optimizer made (student and teacher), their dev scoring included.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

csv.field_size_limit(sys.maxsize)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def profile(results: Path) -> dict[str, dict[str, float]]:
    stages: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    per_task: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for path in sorted(results.glob("*.csv")):
        rows = _rows(path)
        if not rows or "output_tokens" not in rows[0]:
            continue
        arm = rows[0]["phase"]
        s = stages["baseline" if arm == "baseline" else f"eval ({arm})"]
        meta = path.with_suffix(".meta.json")
        wall = json.loads(meta.read_text()).get("wall_s", 0.0) if meta.exists() else 0.0
        s["units"] += 1
        s["wall_s"] += wall or 0.0
        for r in rows:
            s["calls"] += int(r.get("lm_calls") or 0)
            s["input_tokens"] += int(r.get("input_tokens") or 0)
            s["output_tokens"] += int(r.get("output_tokens") or 0)
            s["cache_hits"] += int(r.get("cache_hit") or 0)
            s["parse_failures"] += int(r.get("parse_failure") or 0)
            s["errors"] += bool(r.get("error"))
            per_task[f"{rows[0]['task']}"][arm] += int(r.get("output_tokens") or 0)
    for meta in sorted((results / "optimized_programs" / ".seeds").glob("*/seed*.meta.json")):
        result = json.loads(meta.read_text()).get("result", {})
        s = stages["optimize seeds"]
        s["units"] += 1
        for key in ("lm_calls", "input_tokens", "output_tokens", "cache_hits"):
            s["calls" if key == "lm_calls" else key] += result.get(key) or 0
        s["wall_s"] += result.get("wall_s") or 0.0
        s["failed"] += result.get("status") == "failed"
    return {"stages": {k: dict(v) for k, v in stages.items()}, "output_tokens_per_task": {k: dict(v) for k, v in
                                                                                       sorted(per_task.items())}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path)
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args()
    prof = profile(args.results)
    if args.json:
        print(json.dumps(prof, indent=2))
        return
    print(f"{'stage':22s} {'units':>5s} {'calls':>6s} {'in tok':>8s} {'out tok':>8s} {'cached':>6s} "
          f"{'unit s (sum)':>12s}")
    for stage, s in prof["stages"].items():
        print(f"{stage:22s} {int(s.get('units', 0)):5d} {int(s.get('calls', 0)):6d} {int(s.get('input_tokens', 0)):8d} "
              f"{int(s.get('output_tokens', 0)):8d} {int(s.get('cache_hits', 0)):6d} {s.get('wall_s', 0):12.0f}")
    print("\noutput tokens per task and arm:")
    for task, arms in prof["output_tokens_per_task"].items():
        print(f"  {task:16s} " + "  ".join(f"{a} {int(n)}" for a, n in sorted(arms.items())))


if __name__ == "__main__":
    main()

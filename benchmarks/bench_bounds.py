"""Proof that tasks' generation bounds never cut a gold answer: every gold answer of every split of every task (the
offline mirror, or the built-in samples), written as the structured adapter's JSON reply, is tokenized by the embedded
model's own tokenizer (llama.cpp's /tokenize) and compared with the task's bound.

Prints one line per task: examples checked, the longest reply in tokens, the bound, and the headroom (bound / longest);
the last line reads `bounds_ok=<True|False> min_headroom=<x>`. Usage:
  IA_DATA_DIR=../shared/datasets python benchmarks/bench_bounds.py [--data mirror|builtin] [--per-split N]
(--per-split N checks only each split's N longest and N densest replies: what tests/test_generation_bounds.py does.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.backends import backend_for  # noqa: E402
from src.registry import load_config  # noqa: E402
from src.tasks import get_task  # noqa: E402
from src.tasks.example import TaskExample  # noqa: E402
from src.tasks.sources import resolve_source  # noqa: E402
from src.tasks.splits import load_task_data  # noqa: E402

MODEL = "smollm2-135m"


def reply_text(ex: TaskExample) -> str:
    """The gold answer as the structured adapter's reply: a JSON object of the output fields."""
    return json.dumps(ex.labels, ensure_ascii=False)


def candidates(examples: list[TaskExample], per_split: int | None) -> list[TaskExample]:
    """Every example, or the `per_split` longest replies and the `per_split` with the fewest characters per
    whitespace-separated word (digits, symbols, code: the replies a tokenizer splits finest)."""
    if not per_split or len(examples) <= 2 * per_split:
        return examples
    longest = sorted(examples, key=lambda e: -len(reply_text(e)))[:per_split]
    dense = sorted(examples, key=lambda e: -len(reply_text(e)) / max(1, len(reply_text(e).split())))[:per_split]
    return list({e.id: e for e in longest + dense}.values())


def check(data_mode: str, per_split: int | None = None, out=sys.stdout) -> list[dict[str, Any]]:
    """One row per bounded task: n checked, longest reply (tokens), bound, headroom."""
    config = load_config(Path(__file__).resolve().parents[1])
    source = resolve_source(data_mode, config, announce=False)
    server = backend_for(config.model(MODEL), config).server(1)
    rows = []
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for key in config.tasks:
            task = get_task(key, config)
            data = load_task_data(task, source)
            bound = data.provenance.get("generation_bound")
            if not bound:
                print(f"{key}: no bound (reasons without a gold rationale)", file=out)
                continue
            t0 = time.time()
            worst, worst_id, n = 0, "", 0
            for ex in candidates(data.train, per_split) + candidates(data.eval, per_split):
                tokens = len(client.post("/tokenize", json={"content": reply_text(ex)}).json()["tokens"])
                n += 1
                if tokens > worst:
                    worst, worst_id = tokens, ex.id
            row = {"task": key, "n": n, "longest_tokens": worst, "longest_id": worst_id,
                   "bound": bound["max_tokens"], "headroom": round(bound["max_tokens"] / max(1, worst), 2)}
            rows.append(row)
            print(f"{key}: {n} gold replies, longest {worst} tokens ({worst_id}), bound {bound['max_tokens']}, "
                  f"headroom x{row['headroom']} ({time.time() - t0:.0f}s)", file=out, flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="mirror", choices=["mirror", "builtin"])
    ap.add_argument("--per-split", type=int, default=None)
    args = ap.parse_args()
    rows = check(args.data, args.per_split)
    ok = all(r["longest_tokens"] <= r["bound"] for r in rows)
    print(f"bounds_ok={ok} min_headroom={min(r['headroom'] for r in rows):.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

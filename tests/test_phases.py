"""Study phases 3-5: demo-count curves, reasoning traces (phase 4), tipping point (resume, regimes)."""

from __future__ import annotations

import csv
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import run_cli

from src.backends.adapters import strip_thinking
from src.studies.tipping_point.regimes import classify_regime


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ---- phase 3 ---------------------------------------------------------------------------------------------------

def _save_program_with_demos(results: Path, config, n_demos: int) -> Path:
    """A saved 'optimized' program: the analysis program with its instruction and n labelled train demos."""
    from src.results.naming import program_path, sidecar_path
    from src.results.files import write_json
    from src.tasks import get_task
    from src.tasks.sources import resolve_source
    from src.tasks.base import to_dspy
    from src.tasks.splits import load_task_data

    task = get_task("analysis", config)
    data = load_task_data(task, resolve_source("builtin", config, announce=False))
    program = task.program()
    program.predictors()[0].demos = [to_dspy(ex) for ex in data.train[:n_demos]]
    path = program_path(results, "smollm2-135m", "analysis", "mipro_v2")
    path.parent.mkdir(parents=True)
    program.save(str(path))
    write_json(sidecar_path(path), {"status": "ok", "n_demos_total": n_demos, "module": "Predict",
                                    "adapter": "structured", "optimizer": "mipro_v2"})
    return path


def test_demo_curve_writes_curve_and_decomposition(embedded_config, tmp_path):
    _save_program_with_demos(tmp_path, embedded_config, 2)
    r = run_cli(["src.demo_curve_eval", "--models", "smollm2-135m", "--tasks", "analysis", "--data", "builtin",
                 "--limit", "6", "--results-dir", str(tmp_path)])
    assert r.returncode == 0, r.stderr[-2000:]
    rows = _rows(tmp_path / "demo_curves" / "demo_curve_results.csv")
    # the documented columns, then the run-to-run spread (added with --repeats; empty at k = 1)
    assert list(rows[0]) == ["model", "task", "condition", "n_demos", "score", "ci_low", "ci_high", "n_examples",
                             "n_errors", "elapsed_s", "phase1_delta", "repeats", "run_sd", "agreement", "run_scores"]
    assert all((x["repeats"], x["run_sd"], x["agreement"], x["run_scores"]) == ("1", "", "", "") for x in rows)
    assert [(x["condition"], x["n_demos"]) for x in rows] == [
        ("baseline", "0"), ("optimized_instructions", "0"), ("optimized_instructions", "1"),
        ("optimized_instructions", "2")]
    assert all(int(x["n_examples"]) == 6 and float(x["ci_low"]) <= float(x["score"]) <= float(x["ci_high"])
               for x in rows)
    (dec,) = _rows(tmp_path / "demo_curves" / "decomposition.csv")
    by = {(x["condition"], x["n_demos"]): float(x["score"]) for x in rows}
    # The program keeps the baseline instruction, so with 0 demos it is the baseline program: no instruction effect.
    assert float(dec["instruction_effect"]) == pytest.approx(by[("optimized_instructions", "0")] - by[("baseline", "0")])
    assert float(dec["demo_effect"]) == pytest.approx(by[("optimized_instructions", "2")]
                                                      - by[("optimized_instructions", "0")])
    assert float(dec["demo_ci_low"]) <= float(dec["demo_effect"]) <= float(dec["demo_ci_high"])
    assert int(dec["best_n"]) in (0, 1, 2) and dec["k"] == "2"
    # best n chosen on 3 of the 6 examples, its score and lift over the baseline measured on the other 3
    assert dec["best_n_selected_on"] == "eval half A (3 examples)" and dec["best_tested_on"] == "eval half B (3 examples)"
    assert float(dec["best_vs_baseline_ci_low"]) <= float(dec["best_vs_baseline"]) <= float(dec["best_vs_baseline_ci_high"])


# ---- phase 4 ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, visible, thinking", [
    ("<think>\nThe passage says it rotates backwards.\n</think>\n\n{\"answer\": \"yes\"}", '{"answer": "yes"}',
     "The passage says it rotates backwards."),  # qwen3 style
    ("Okay, the user asks... so no.\n</think>\n\n[[ ## answer ## ]]\nno", "[[ ## answer ## ]]\nno",
     "Okay, the user asks... so no."),  # deepseek-r1: the template opened the tag in the prompt
    ("<think>Let me count: 3 + 4 is", "", "Let me count: 3 + 4 is"),  # truncated while thinking
    ("<THINK>a</THINK>x<think>b</think>y", "xy", "a\nb"),
    ("plain answer", "plain answer", ""),
])
def test_thinking_traces_are_stripped(text, visible, thinking):
    assert strip_thinking(text) == (visible, thinking)


class _ReasoningAPI(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that answers like a reasoning model: a think block, then the answer."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        content = "<think>\n" + "The passage states the fact plainly, so the answer is yes. " * 8 + "\n</think>\n\n" \
                  + '{"answer": "yes"}'
        body = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "r",
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": content}}],
                           "usage": {"prompt_tokens": 120, "completion_tokens": 140, "total_tokens": 260}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_reasoning_reply_is_parsed_and_its_thinking_counted(embedded_config):
    from src.registry import ModelSpec
    from src.evaluation.engine import EngineSettings, evaluate
    from src.tasks import get_task
    from src.tasks.sources import resolve_source
    from src.tasks.splits import load_task_data
    from src.backends.session import Sessions, SessionOptions

    srv = ThreadingHTTPServer(("127.0.0.1", 0), _ReasoningAPI)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        spec = ModelSpec("think-standin", "openai_compatible", "r", "api", api_base=f"http://127.0.0.1:{srv.server_port}/v1",
                         supports_thinking=True, price_in=1.0, price_out=2.0, schema_decoding=True)
        config = embedded_config.with_model(spec)
        task = get_task("analysis", config)
        data = load_task_data(task, resolve_source("builtin", config, announce=False))
        yes = [ex for ex in data.eval if ex.gold is True][:2]
        session = Sessions(config, SessionOptions(adapter="json", cache=False)).session("think-standin")
        recs = evaluate(task.program(), yes, task, spec, session.lm, session.adapter, EngineSettings(progress=False),
                        "t", "baseline", lambda r: None)
    finally:
        srv.shutdown()
    for rec in recs:
        assert rec.parse_failure == 0 and rec.is_correct == 1 and rec.prediction == "yes"
        assert rec.thinking_tokens > 50  # ~470 characters of reasoning, 4 characters per token
        assert rec.output_tokens == 140  # thinking counts in cost: it is part of the completion tokens
        assert rec.cost_usd == pytest.approx((120 * 1.0 + 140 * 2.0) / 1e6)


# ---- phase 5 ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("baseline, verdicts, expected", [
    (0.0999, {1: "improved"}, ("too hard", 1)),
    (0.10, {1: "no detectable effect", 2: "no detectable effect"}, ("resistant", None)),
    (0.10, {1: "no detectable effect", 2: "improved", 3: "improved"}, ("responsive", 2)),
    (0.70, {5: "improved"}, ("responsive", 5)),
    (0.7001, {1: "improved"}, ("already solved", 1)),
    (0.70, {1: "hurt"}, ("resistant", None)),
    (0.5, {}, ("resistant", None)),
])
def test_regime_classifier_at_the_thresholds(baseline, verdicts, expected):
    assert classify_regime(baseline, verdicts) == expected


def test_tipping_point_runner_checkpoints_and_resumes(embedded_config, tmp_path):
    args = ["src.tipping_point.runner", "--models", "smollm2-135m", "--tasks", "analysis", "--n", "0,1",
            "--seeds", "10,20", "--limit", "5", "--data", "builtin", "--results-dir", str(tmp_path)]
    r = run_cli(args)
    assert r.returncode == 0, r.stderr[-2000:]
    ckpts = sorted(p.name for p in (tmp_path / "tipping_point" / "checkpoints").glob("*.json"))
    assert ckpts == ["smollm2-135m_analysis_baseline.json", "smollm2-135m_analysis_n1_seed10.json",
                     "smollm2-135m_analysis_n1_seed20.json"]
    (summary,) = _rows(tmp_path / "tipping_point" / "summary.csv")
    assert summary["regime"] in ("too hard", "already solved", "responsive", "resistant")
    assert summary["n_values"] == "[0, 1]" and summary["seeds"] == "2"
    curve = _rows(tmp_path / "tipping_point" / "curve.csv")
    assert [x["n"] for x in curve] == ["0", "1"]
    # the family its p-values are corrected over, and where the best n was chosen and tested
    assert summary["correction"] == "Holm over this pair's 1 n value(s)"
    assert summary["best_n"] == "1" and summary["best_n_selected_on"] == "eval half A (2 examples)"
    assert summary["best_tested_on"] == "eval half B (3 examples)"
    assert [x["correction"] for x in curve] == ["", summary["correction"]]
    assert float(curve[1]["p_holm"]) == pytest.approx(float(curve[1]["p"]))  # a family of one

    # A long run killed part-way: one cell's checkpoint is missing; only that cell runs again.
    lost = tmp_path / "tipping_point" / "checkpoints" / "smollm2-135m_analysis_n1_seed20.json"
    kept = (tmp_path / "tipping_point" / "checkpoints" / "smollm2-135m_analysis_n1_seed10.json").read_bytes()
    lost.unlink()
    t0 = time.time()
    r = run_cli(args)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.count("reused checkpoint") == 2 and "n=1 seed=20: score" in r.stderr
    assert lost.is_file()
    assert (tmp_path / "tipping_point" / "checkpoints" / "smollm2-135m_analysis_n1_seed10.json").read_bytes() == kept
    assert time.time() - t0 < 120


# ---- honest selection and multiplicity (issue 11) -----------------------------------------------------------------

def test_selection_split_is_seeded_order_free_and_disjoint():
    from src.stats.selection import selection_split

    ids = [f"e{i}" for i in range(21)]
    a, b = selection_split(ids)
    assert len(a) == 10 and len(b) == 11 and not set(a) & set(b) and set(a) | set(b) == set(ids)
    assert selection_split(list(reversed(ids))) == (list(reversed(a)), list(reversed(b)))  # order does not matter
    assert selection_split(ids, seed=1) != (a, b)


def test_best_n_is_chosen_on_one_half_and_scored_on_the_other():
    from src.stats.selection import choose_best, selection_split
    from src.tasks.example import Score

    ids = [f"e{i}" for i in range(40)]
    select, test = selection_split(ids)

    def scores(right: set[str]):
        return {i: Score(float(i in right), i in right, "") for i in ids}

    # n=2 is perfect on the selection half only; n=1 is perfect on the test half only
    curve = {0: scores(set()), 1: scores(set(test)), 2: scores(set(select))}
    mean = lambda xs: sum(s.score for s in xs) / len(xs)  # noqa: E731
    assert choose_best(curve, select, mean) == 2
    assert mean([curve[2][i] for i in test]) == 0.0  # what gets reported: no winner's curse
    assert choose_best({1: scores(set()), 3: scores(set())}, select, mean) == 1  # ties: the smallest n
    assert choose_best(curve, [], mean) is None


def test_holm_within_a_pair_controls_false_positives_under_the_null():
    """Simulated pairs with no true effect at any of 5 n values (McNemar exact on 50 examples): calling a pair
    responsive when ANY raw p < 0.05 gives more false positives than the 5% the word "significant" promises;
    Holm within the pair keeps them at or under 5%. (CIs are taken as excluding 0, the worst case for the test.)"""
    import numpy as np

    from src.stats import core as stats
    from src.stats.selection import holm_within

    rng = np.random.default_rng(12)
    pairs, raw_hits, holm_hits = 3000, 0, 0
    for _ in range(pairs):
        base = rng.random(50) < 0.5
        tests = {}
        for n in (1, 2, 3, 5, 8):
            arm = np.where(rng.random(50) < 0.4, rng.random(50) < 0.5, base)  # same accuracy, correlated with base
            b, c = int(np.sum(base & ~arm)), int(np.sum(~base & arm))
            tests[n] = (0.01 if c >= b else -0.01, 0.001 if c >= b else -0.02, 0.02 if c >= b else -0.001,
                        stats.mcnemar_exact(b, c))
        raw_hits += any(t[3] < 0.05 for t in tests.values())
        holm_hits += any(r.verdict != "no detectable effect" for r in holm_within(tests).values())
    raw_rate, holm_rate = raw_hits / pairs, holm_hits / pairs
    assert holm_rate <= 0.05 + 3 * (0.05 * 0.95 / pairs) ** 0.5
    assert raw_rate > holm_rate

"""Per-task generation bounds (src.tasks.bounds): how they are derived, that no gold answer is cut (the embedded
model's own tokenizer on the offline datasets), and which sessions apply them (src.backends.session)."""

from __future__ import annotations

import importlib.util
import io

import pytest

from src.backends.session import Sessions
from src.registry import load_config
from src.tasks import get_task
from src.tasks.bounds import MIN_BOUND, bound_for, derive_bound
from src.tasks.example import TaskExample
from tests.conftest import ROOT


def _bench():
    spec = importlib.util.spec_from_file_location("bench_bounds", ROOT / "benchmarks" / "bench_bounds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ex(i: int, **labels) -> TaskExample:
    return TaskExample(f"e{i}", {"document": "x"}, labels, None, "")


def test_the_bound_follows_the_longest_gold_answer(workdir):
    task = get_task("synthesis", load_config(workdir))
    short = derive_bound(task, [_ex(0, summary="a" * 30), _ex(1, summary="b" * 300)])
    # 300 characters -> at most 100 tokens, x2 margin, + one field's framing + the reply's
    assert short["max_tokens"] == 200 + 12 + 16
    assert short["longest_answer_tokens_est"] == 100 and not short["covers_reasoning"]
    assert derive_bound(task, [_ex(0, summary="yes")])["max_tokens"] == MIN_BOUND
    assert derive_bound(task, []) is None


def test_reasoning_is_bounded_only_when_the_gold_has_a_rationale(workdir):
    config = load_config(workdir)
    math = get_task("math", config)
    with_rationale = derive_bound(math, [_ex(0, reasoning="r" * 90, answer="7")])
    assert with_rationale["covers_reasoning"] and with_rationale["margin"] == 3.0
    assert derive_bound(math, [_ex(0, answer="7")]) is None  # a chain of thought with nothing to measure it by
    synthesis = get_task("synthesis", config)
    provenance = {"generation_bound": derive_bound(synthesis, [_ex(0, summary="s" * 60)])}
    assert bound_for(provenance, synthesis.program()) == provenance["generation_bound"]["max_tokens"]
    # the cot_zero_shot arm on a task whose gold has no rationale: the model's own cap, never the answer's bound
    assert bound_for(provenance, synthesis.program(chain_of_thought=True)) is None
    assert bound_for({"generation_bound": None}, synthesis.program()) is None


def test_only_backends_that_apply_task_bounds_get_them(embedded_config, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    sessions = Sessions(embedded_config)
    base = sessions.session("smollm2-135m")
    bounded = sessions.for_task("smollm2-135m", 60)
    assert bounded.lm.kwargs["max_tokens"] == 60 and bounded.lm_facts()["task_generation_bound"] == 60
    assert base.lm.kwargs["max_tokens"] == 512 and "task_generation_bound" not in base.lm_facts()
    assert bounded.lm.meter is base.lm.meter  # a stage's spend on a model is counted once
    assert sessions.for_task("smollm2-135m", 60) is bounded
    assert sessions.for_task("smollm2-135m", 5000) is base  # a bound above the model's cap changes nothing
    # a run cap below the bound stays (the quick preset's 192 on a 240-token task)
    assert sessions.for_task("smollm2-135m", 240, max_tokens=192).lm.kwargs["max_tokens"] == 192
    assert sessions.for_task("smollm2-135m", 100, max_tokens=192).lm.kwargs["max_tokens"] == 100
    api = sessions.for_task("gpt-4o-mini", 60)  # a real API model keeps its generous max_tokens
    assert api.lm.kwargs["max_tokens"] == embedded_config.model("gpt-4o-mini").max_tokens


@pytest.mark.parametrize("data_mode", ["builtin", "mirror"])
def test_no_gold_answer_exceeds_its_bound_in_the_models_tokenizer(embedded_config, shared_datasets, monkeypatch,
                                                                  data_mode):
    """Every task's gold answers (the longest and the most finely tokenized 100 of each split on the mirror, all of
    them in the built-in samples), written as the structured adapter's reply, fit the task's bound with room to
    spare. benchmarks/bench_bounds.py checks every answer of the mirror (65,000 replies)."""
    monkeypatch.setenv("IA_DATA_DIR", str(shared_datasets))
    out = io.StringIO()
    rows = _bench().check(data_mode, per_split=None if data_mode == "builtin" else 100, out=out)
    assert len(rows) >= 8, out.getvalue()
    for row in rows:
        assert row["longest_tokens"] * 1.2 <= row["bound"], (row, out.getvalue())



def test_complete_results_made_under_a_larger_cap_are_reused_partial_ones_refused(tmp_path):
    from src.errors import UserError
    from src.results.checkpoint import claim, made_under_larger_cap

    old = {"model": "m", "task": "t", "max_tokens": 512}
    assert made_under_larger_cap(old, {**old, "max_tokens": 60})
    assert not made_under_larger_cap(old, {**old, "max_tokens": 1024})  # a larger cap now could change answers
    assert not made_under_larger_cap(old, {**old, "max_tokens": 60, "task": "u"})
    assert not made_under_larger_cap(None, old)
    csv = tmp_path / "r.csv"
    csv.write_text("x")
    with pytest.raises(UserError) as err:  # what a partial unit meets (run_unit reuses only complete ones)
        claim(old, {**old, "max_tokens": 60}, [csv], results_dir=tmp_path, force=False, what=csv)
    assert "max_tokens=512 (now 60)" in str(err.value) and "generation cap differs" in str(err.value)
    assert "--force" in str(err.value) and "\n" not in str(err.value)

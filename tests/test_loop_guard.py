"""The embedded models' loop guard: the rule that calls a reply looping (src.backends.embedded.loops) never fires on a
gold answer of any task, and the engine (src.backends.embedded.loop_guard) stops a looping reply on the real
embedded server, frees the slot, counts its tokens as the server would, and leaves a reply that does not loop
exactly as the server sends it."""

from __future__ import annotations

import json
import time

import dspy
import httpx
import pytest

from src.backends.embedded.loops import MIN_SPAN, first_loop_end, looping
from src.backends.session import Sessions
from src.tasks import get_task
from src.tasks.sources import resolve_source
from src.tasks.splits import load_task_data

LOOPING_PROMPT = "Print the letter a one hundred times."  # SmolLM2-135M answers "A: A: A: ..." until its bound
PLAIN_PROMPT = "Name the capital of France in one sentence."


def test_a_periodic_tail_is_a_loop():
    item = '"Soccer",\n    '
    assert looping('{"persons": ["Oliver Grant", ' + item * 10)
    assert not looping('{"persons": ["Oliver Grant", ' + item * 9)  # 126 characters of it: not yet
    sentence = "The dog was found on the top of the shaft the whole time, barking. "  # 68 characters
    assert looping("A man fell down a shaft. " + sentence * 3)  # a sentence: three copies
    assert not looping("A man fell down a shaft. " + sentence * 2)
    short = "The dog was found on the top of the shaft the whole time. "  # 58: a short unit needs four
    assert looping("A man fell. " + short * 4) and not looping("A man fell. " + short * 3)
    assert looping("x" + "else {code} " * 12)
    assert not looping("short " * 3)  # a loop needs MIN_SPAN characters of it
    text = "intro. " + sentence * 3
    end = first_loop_end(text)
    assert end is not None and looping(text[:end]) and not looping(text[:end - 1])
    assert end <= len(text) and end >= MIN_SPAN


def test_what_correct_answers_repeat_is_not_a_loop():
    # a GSM8K solution writes one line twice in a row (train-01930)
    line = "For the next 30 minutes, 3*2=6 cups of water came out.\n"
    assert first_loop_end("For the first 30 minutes, 3*2=6 cups of water came out.\n" + line * 2
                          + "For the next hour, 6*4=24 cups of water came out.\n") is None
    # an MBPP regex repeats an octet's group 3.8 times (mbpp/669), and its JSON form has longer units
    octet = "25[0-5]|2[0-4][0-9]|[0-1]?[0-9][0-9]?)\\.( \n\t\t\t"
    regex = "regex = '''^(" + octet * 3 + "25[0-5]|2[0-4][0-9]|[0-1]?[0-9][0-9]?)$'''"
    assert first_loop_end(regex) is None and first_loop_end(json.dumps({"code": regex})) is None
    # runs of whitespace (an MBPP answer pads a line with 100 spaces, mbpp/649)
    assert first_loop_end("def f(nums, m, n):" + " " * 120 + "\n    return nums[m:n]") is None
    # an ordinary varied list and prose
    assert first_loop_end(json.dumps({"persons": [f"Person {i}" for i in range(40)]})) is None


@pytest.mark.parametrize("data_mode", ["builtin", "mirror"])
def test_no_gold_answer_of_any_task_contains_a_loop(embedded_config, shared_datasets, monkeypatch, data_mode):
    """Every gold answer of every split of every task (all of them: about 115,000 answers on the mirror), as the
    structured adapter's JSON reply and as each text field alone, checked one character at a time."""
    monkeypatch.setenv("IA_DATA_DIR", str(shared_datasets))
    source = resolve_source(data_mode, embedded_config, announce=False)
    checked = 0
    for key in embedded_config.tasks:
        data = load_task_data(get_task(key, embedded_config), source)
        for ex in data.train + data.eval:
            texts = [json.dumps(ex.labels, ensure_ascii=False)]
            texts += [v for v in ex.labels.values() if isinstance(v, str)]
            for text in texts:
                assert first_loop_end(text) is None, (key, ex.id, text)
                checked += 1
    assert checked > (500 if data_mode == "builtin" else 50_000)


@pytest.fixture(scope="module")
def guarded(embedded_config):
    return Sessions(embedded_config).session("smollm2-135m", max_tokens=150).lm


def _server(lm) -> str:
    return lm._engine_spec.url


def test_a_looping_reply_is_stopped_and_counted_as_the_server_counts(guarded):
    engine = guarded._engine_spec
    before = engine.stopped
    messages = [{"role": "user", "content": LOOPING_PROMPT}]
    text = guarded(messages=messages)[0]
    usage = guarded.history[-1]["usage"]
    assert engine.stopped == before + 1
    assert looping(text) and len(text) < 150 * 2  # stopped well before its 150-token bound
    assert usage["completion_tokens"] < 150
    with httpx.Client(base_url=_server(guarded), timeout=120) as http:
        # the slot was freed when the stream closed: nothing is still generating
        deadline = time.monotonic() + 5
        while any(s["is_processing"] for s in http.get("/slots").json()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(s["is_processing"] for s in http.get("/slots").json())
        # the prompt as the server counts it, and the output: exactly as many tokens reproduce the same text
        whole = http.post("/v1/chat/completions", json={"messages": messages, "temperature": 0,
                                                         "max_tokens": usage["completion_tokens"]}).json()
    assert usage["prompt_tokens"] == whole["usage"]["prompt_tokens"]
    assert whole["choices"][0]["message"]["content"] == text
    assert whole["usage"]["completion_tokens"] == usage["completion_tokens"]


def test_a_reply_that_does_not_loop_is_the_servers_own(guarded):
    messages = [{"role": "user", "content": PLAIN_PROMPT}]
    before = guarded._engine_spec.stopped
    text = guarded(messages=messages)[0]
    usage = guarded.history[-1]["usage"]
    plain = dspy.LM(guarded.model, api_base=f"{_server(guarded)}/v1", api_key="embedded", temperature=0.0,
                    max_tokens=150, cache=False)
    assert plain(messages=messages)[0] == text
    assert plain.history[-1]["usage"]["prompt_tokens"] == usage["prompt_tokens"]
    assert plain.history[-1]["usage"]["completion_tokens"] == usage["completion_tokens"]
    assert guarded._engine_spec.stopped == before


def test_guarded_replies_are_cached_apart_and_recorded(embedded_config, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    sessions = Sessions(embedded_config)
    embedded = sessions.session("smollm2-135m")
    assert embedded.lm.kwargs["metadata"] == {"loop_guard": "1"}  # part of DSPy's cache key
    assert embedded.lm_facts()["loop_guard"] == "1"
    api = sessions.session("gpt-4o-mini")  # real API models are never stopped: their replies are theirs
    assert "metadata" not in api.lm.kwargs and "loop_guard" not in api.lm_facts()


def test_a_model_can_run_without_the_guard(embedded_config, workdir):
    """`"loop_guard": false` in models.json: DSPy's own engine (every reply run to its bound)."""
    from src.backends import backend_for
    from src.backends.embedded.loop_guard import LoopGuardEngine
    from src.registry import load_config

    (workdir / "models.json").write_text(json.dumps({"models": [{"key": "smollm2-135m", "loop_guard": False}]}))
    off = load_config(workdir)
    assert backend_for(off.model("smollm2-135m"), off).engine("http://127.0.0.1:9/v1", 5.0) is None
    on = backend_for(embedded_config.model("smollm2-135m"), embedded_config).engine("http://127.0.0.1:9/v1", 5.0)
    assert isinstance(on, LoopGuardEngine) and on.url == "http://127.0.0.1:9"

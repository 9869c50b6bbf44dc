"""The rehearsal's protocol fronts over the real embedded server: each answers its protocol as the real service does
where the product depends on it (checked on the wire and through the official clients), and the product's own
backends (LiteLLM's ollama_chat, anthropic and openai providers) run through them, reasoning traces counted."""

from __future__ import annotations

import json

import httpx
import pytest

from src.backends.endpoints import REGISTRY
from src.backends.session import SessionOptions, Sessions
from src.evaluation.engine import EngineSettings, evaluate
from src.rehearsal.ollama_front import full_tag
from src.rehearsal.stand_ins import PLACEHOLDER_KEY, StandIns
from src.tasks import get_task
from src.tasks.sources import resolve_source
from src.tasks.splits import load_task_data

HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def stand_ins(embedded_config):
    with StandIns(embedded_config, cap=128) as s:  # a looping 135M answer costs 128 tokens, not the study's 4,096
        yield s


def _chat(s, **body):
    return httpx.post(f"{s.ollama.url}/api/chat", json={"stream": False, "messages": HELLO, **body}, timeout=120)


# ---- Ollama ---------------------------------------------------------------------------------------------------------

def test_ollama_lists_and_shows_every_registry_tag_through_the_official_client(stand_ins, embedded_config):
    import ollama

    client = ollama.Client(host=stand_ins.ollama.url)
    listed = {m.model: m for m in client.list().models}
    wanted = {full_tag(m.model_id) for m in embedded_config.models.values() if m.provider == "ollama"}
    assert wanted <= set(listed), wanted - set(listed)
    assert listed["llama3.2:latest"].digest != listed["qwen3:4b"].digest  # one digest per tag, as Ollama has
    assert "thinking" in client.show("qwen3:4b").capabilities
    assert "thinking" not in client.show("llama3.2").capabilities
    with pytest.raises(ollama.ResponseError, match="not found"):
        client.chat(model="nosuch:7b", messages=HELLO)


def test_ollama_reasoning_tag_thinks_inline_unless_asked_for_the_field(stand_ins):
    inline = _chat(stand_ins, model="qwen3:4b", options={"num_predict": 200, "temperature": 0}).json()
    assert inline["message"]["content"].startswith("<think>\n") and "</think>" in inline["message"]["content"]
    assert "thinking" not in inline["message"]
    field = _chat(stand_ins, model="qwen3:4b", think=True, options={"num_predict": 200, "temperature": 0}).json()
    assert field["message"]["thinking"] and "<think>" not in field["message"]["content"]
    plain = _chat(stand_ins, model="qwen3:4b", think=False, options={"num_predict": 60}).json()
    assert "<think>" not in plain["message"]["content"] and "thinking" not in plain["message"]
    # eval_count counts the trace and the answer, and num_predict bounds both together (as Ollama does)
    assert field["eval_count"] <= 200 and field["eval_count"] > 0
    refused = _chat(stand_ins, model="llama3.2", think=True)
    assert refused.status_code == 400 and "does not support thinking" in refused.json()["error"]


def test_ollama_format_schema_constrains_and_streams_as_ndjson(stand_ins):
    schema = {"type": "object", "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
              "required": ["answer"]}
    out = _chat(stand_ins, model="llama3.2", format=schema, options={"num_predict": 40, "temperature": 0}).json()
    assert json.loads(out["message"]["content"])["answer"] in ("yes", "no")
    with httpx.stream("POST", f"{stand_ins.ollama.url}/api/chat", timeout=120,
                      json={"model": "llama3.2", "messages": HELLO, "options": {"num_predict": 20}}) as r:
        chunks = [json.loads(line) for line in r.iter_lines() if line.strip()]
    assert [c["done"] for c in chunks][-1] is True and not any(c["done"] for c in chunks[:-1])
    assert chunks[-1]["eval_count"] > 0 and "".join(c["message"]["content"] for c in chunks)


def test_ollama_records_prompts_longer_than_num_ctx(stand_ins):
    before = len(stand_ins.ollama.overflows)
    long = [{"role": "user", "content": "word " * 600}]
    httpx.post(f"{stand_ins.ollama.url}/api/chat", timeout=120, json={
        "model": "llama3.2", "stream": False, "messages": long, "options": {"num_ctx": 256, "num_predict": 4}})
    assert stand_ins.ollama.overflows[before:] and stand_ins.ollama.overflows[-1]["num_ctx"] == 256


# ---- Anthropic and OpenAI -------------------------------------------------------------------------------------------

def _messages(s, headers=None, **body):
    h = {"x-api-key": PLACEHOLDER_KEY, "anthropic-version": "2023-06-01"} if headers is None else headers
    return httpx.post(f"{s.anthropic.url}/v1/messages", headers=h, timeout=120,
                      json={"model": "claude-sonnet-4-5", "max_tokens": 60, "messages": HELLO, **body})


def test_anthropic_messages_protocol(stand_ins):
    assert _messages(stand_ins, headers={"anthropic-version": "2023-06-01"}).status_code == 401
    assert _messages(stand_ins, headers={"x-api-key": PLACEHOLDER_KEY}).status_code == 400
    no_max = httpx.post(f"{stand_ins.anthropic.url}/v1/messages", timeout=60,
                        headers={"x-api-key": "k" * 8, "anthropic-version": "2023-06-01"},
                        json={"model": "claude-sonnet-4-5", "messages": HELLO})
    assert no_max.status_code == 400 and no_max.json()["error"]["type"] == "invalid_request_error"
    text = _messages(stand_ins, system=[{"type": "text", "text": "Be brief."}]).json()
    assert text["type"] == "message" and text["content"][0]["type"] == "text"
    assert text["stop_reason"] in ("end_turn", "max_tokens") and text["usage"]["output_tokens"] <= 60
    tool = {"name": "json_tool_call", "input_schema": {"type": "object", "properties": {"answer": {
        "type": "string", "enum": ["yes", "no"]}}, "required": ["answer"]}}
    forced = _messages(stand_ins, tools=[tool], tool_choice={"type": "tool", "name": "json_tool_call"}).json()
    assert forced["stop_reason"] == "tool_use" and forced["content"][-1]["input"]["answer"] in ("yes", "no")
    thought = _messages(stand_ins, max_tokens=200, thinking={"type": "enabled", "budget_tokens": 1024}).json()
    assert [b["type"] for b in thought["content"]] == ["thinking", "text"] and thought["content"][0]["thinking"]


def test_openai_front_passes_through_with_the_stand_in_cap(stand_ins):
    url = f"{stand_ins.openai.url}/chat/completions"
    assert httpx.post(url, json={"model": "gpt-4o", "messages": HELLO}, timeout=60).status_code == 401
    auth = {"authorization": f"Bearer {PLACEHOLDER_KEY}"}
    assert httpx.post(url, headers=auth, json={"model": "gpt-9", "messages": HELLO}, timeout=60).status_code == 404
    # what LiteLLM sends for gpt-5: max_completion_tokens (16,000 in the registry) -> capped, still answered
    out = httpx.post(url, headers=auth, timeout=300, json={"model": "gpt-5.2", "messages": HELLO, "temperature": 1.0,
                                                           "max_completion_tokens": 16000}).json()
    assert out["model"] == "gpt-5.2" and out["usage"]["completion_tokens"] <= stand_ins.upstream.cap


# ---- the product's backends through the fronts ----------------------------------------------------------------------

def _evaluate(config, key: str, n: int = 2):
    REGISTRY.reset()
    task = get_task("analysis", config)
    data = load_task_data(task, resolve_source("builtin", config, announce=False))
    session = Sessions(config, SessionOptions(cache=False)).session(key)
    recs = []
    evaluate(task.program(), data.eval[:n], task, config.model(key), session.lm, session.adapter,
             EngineSettings(concurrency=2, progress=False), "t", "baseline", recs.append)
    return recs


@pytest.mark.parametrize("key", ["qwen3_4b", "claude-sonnet-4.5", "gpt-5.2", "llama3.2"])
def test_the_studys_keys_run_through_their_protocols(stand_ins, embedded_config, key, monkeypatch):
    for k, v in stand_ins.env.items():
        monkeypatch.setenv(k, v)
    sessions = Sessions(embedded_config, SessionOptions(cache=False))
    sessions.preflight([key], None)  # reachable, tag pulled, key present: as against the real services
    before = len(stand_ins.ollama.requests)
    recs = _evaluate(embedded_config, key)
    assert [r.error for r in recs] == ["", ""], [r.error for r in recs]
    assert all(r.output_tokens > 0 and r.latency_ms > 0 for r in recs)
    if embedded_config.model(key).supports_thinking:
        # LiteLLM's ollama_chat moves the inline <think> block into reasoning_content; it is found and counted
        assert all(r.thinking_tokens > 0 for r in recs), [r.thinking_tokens for r in recs]
        assert all(r.thinking_tokens < r.output_tokens for r in recs)
        chats = [r for r in stand_ins.ollama.requests[before:] if r["path"] == "/api/chat"]
        assert chats and all(c["body"]["options"]["num_ctx"] >= 8192 for c in chats)  # the window is sent
    else:
        assert all(r.thinking_tokens == 0 for r in recs)

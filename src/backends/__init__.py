"""The one backend factory: model key -> Backend -> configured dspy.LM; plus preflight over a run's models."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dspy

from src.backends.anthropic_api import AnthropicBackend
from src.backends.base import Backend, LMSettings
from src.backends.embedded import EmbeddedBackend
from src.backends.ollama import OllamaBackend
from src.backends.openai_api import OpenAIBackend, OpenAICompatibleBackend
from src.errors import PreflightError

if TYPE_CHECKING:
    from src.config import Config

_BACKENDS: dict[str, type[Backend]] = {
    "ollama": OllamaBackend,
    "openai": OpenAIBackend,
    "anthropic": AnthropicBackend,
    "openai_compatible": OpenAICompatibleBackend,
    "embedded": EmbeddedBackend,
}

__all__ = ["Backend", "LMSettings", "backend_for", "make_lm", "preflight"]


def backend_for(model_key: str, config: Config) -> Backend:
    spec = config.model(model_key)
    return _BACKENDS[spec.provider](spec, config)


def make_lm(model_key: str, config: Config, settings: LMSettings | None = None) -> dspy.LM:
    """A dspy.LM for a registered model, configured for this run (every runner calls this, nothing else)."""
    return backend_for(model_key, config).make_lm(settings or LMSettings())


def preflight(model_keys: list[str], config: Config, adapter: str | None = None) -> None:
    """Check every selected model before any work starts; raise one PreflightError listing every problem."""
    problems: list[str] = []
    for key in dict.fromkeys(model_keys):
        backend = backend_for(key, config)
        problems.extend(backend.problems())
        wanted = adapter or backend.spec.adapter
        if wanted == "structured" and not backend.supports_schema():
            problems.append(f"model {key}: --adapter structured needs schema-constrained decoding, which "
                            f"{backend.provider} model {backend.spec.model_id} is not registered to support: "
                            f"use --adapter chat or json (or set schema_decoding in models.json)")
    if problems:
        raise PreflightError(problems)

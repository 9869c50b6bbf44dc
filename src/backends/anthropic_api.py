"""Anthropic backend (Claude) through DSPy/LiteLLM's anthropic provider."""

from __future__ import annotations

import os
from typing import Any

import dspy

from src.backends.base import Backend, LMSettings


class AnthropicBackend(Backend):
    provider = "anthropic"
    default_concurrency = 8

    @property
    def api_key_env(self) -> str:
        return self.spec.api_key_env or "ANTHROPIC_API_KEY"

    @property
    def api_base(self) -> str | None:
        return self.spec.api_base or os.environ.get("ANTHROPIC_BASE_URL") or None

    def problems(self) -> list[str]:
        if not os.environ.get(self.api_key_env, "").strip():
            return [f"model {self.spec.key}: {self.api_key_env} is not set: put it in .env (see .env.example) "
                    f"or export it"]
        return []

    def make_lm(self, settings: LMSettings) -> dspy.LM:
        kwargs: dict[str, Any] = {"api_key": os.environ.get(self.api_key_env)}
        if self.api_base:
            kwargs["api_base"] = self.api_base
        return self._lm(f"anthropic/{self.spec.model_id}", settings, **kwargs)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "endpoint": self.api_base or "https://api.anthropic.com"}

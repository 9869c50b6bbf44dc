"""OpenAI backend, and any OpenAI-compatible server (vLLM, llama.cpp, LM Studio) through a base URL."""

from __future__ import annotations

import os
from typing import Any

from src.backends.base import LMSettings
from src.backends.hosted import HostedAPIBackend
from src.backends.metering import MeteredLM
from src.backends.endpoints import reachability_problems


class OpenAIBackend(HostedAPIBackend):
    provider = "openai"
    key_env = "OPENAI_API_KEY"
    base_env = "OPENAI_BASE_URL"
    litellm_prefix = "openai"
    default_endpoint = "https://api.openai.com/v1"


class OpenAICompatibleBackend(OpenAIBackend):
    """A self-hosted OpenAI-protocol server named in models.json (api_base required; key optional)."""

    provider = "openai_compatible"
    default_concurrency = 4

    @property
    def credential_env(self) -> str | None:
        return self.spec.api_key_env or None

    def _key_problems(self) -> list[str]:
        if self.spec.api_key_env and not os.environ.get(self.spec.api_key_env, "").strip():
            return [f"model {self.spec.key}: {self.spec.api_key_env} is not set (models.json names it as the key)"]
        return []

    def lm_model(self) -> str:
        return f"openai/{self.spec.model_id}"

    def make_lm(self, settings: LMSettings) -> MeteredLM:
        key = os.environ.get(self.spec.api_key_env, "") if self.spec.api_key_env else ""
        return self._lm(self.lm_model(), settings, api_key=key or "none", api_base=self.base_urls()[0])

    def problems(self) -> list[str]:
        out = self._key_problems()
        if not out and len(self.base_urls()) > 1:
            out = reachability_problems(self.spec.key, self.base_urls(), self.spec.model_id)
        return out

    def describe(self) -> dict[str, Any]:
        urls = self.base_urls()
        return {"provider": self.provider, "model_id": self.spec.model_id, "endpoint": urls[0],
                **({"endpoints": urls} if len(urls) > 1 else {})}

"""A paid API reached with a key from the environment (OpenAI, Anthropic); a base-URL variable or api_base redirects it."""

from __future__ import annotations

import os
from typing import Any

from src.backends.base import Backend, LMSettings
from src.backends.metering import MeteredLM


class HostedAPIBackend(Backend):
    """A paid API reached with a key from the environment; a base-URL variable or api_base can redirect it."""

    default_concurrency = 8  # latency-bound: concurrency is what makes API baselines fast
    key_env = ""  # the provider's key variable, unless the model names its own (api_key_env)
    base_env = ""  # the provider's base-URL variable
    litellm_prefix = ""
    default_endpoint = ""

    @property
    def api_key_env(self) -> str:
        return self.spec.api_key_env or self.key_env

    @property
    def credential_env(self) -> str | None:
        return self.api_key_env

    @property
    def api_base(self) -> str | None:
        """The first base URL (models.json api_base, else the provider's variable), None for the default."""
        return (self.spec.api_bases or (None,))[0] or os.environ.get(self.base_env) or None

    def base_urls(self) -> list[str]:
        return list(self.spec.api_bases) or [self.api_base or self.default_endpoint]

    def problems(self) -> list[str]:
        if not os.environ.get(self.api_key_env, "").strip():
            return [f"model {self.spec.key}: {self.api_key_env} is not set: put it in .env (see .env.example) "
                    f"or export it"]
        return []

    def lm_model(self) -> str:
        return f"{self.litellm_prefix}/{self.spec.model_id}"

    def make_lm(self, settings: LMSettings) -> MeteredLM:
        kwargs: dict[str, Any] = {"api_key": os.environ.get(self.api_key_env)}
        if self.api_base:
            kwargs["api_base"] = self.api_base
        return self._lm(self.lm_model(), settings, **kwargs)

    def describe(self) -> dict[str, Any]:
        urls = self.base_urls()
        return {**super().describe(), "endpoint": urls[0], **({"endpoints": urls} if len(urls) > 1 else {})}

"""Ollama backend: DSPy/LiteLLM's native ollama_chat provider with an explicit context window (num_ctx)."""

from __future__ import annotations

from typing import Any

from src.backends.base import Backend, LMSettings
from src.backends.metering import MeteredLM
from src.registry.specs import DEFAULT_NUM_CTX


def _tag(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


class OllamaBackend(Backend):
    provider = "ollama"
    default_concurrency = 2  # Ollama serves OLLAMA_NUM_PARALLEL requests at once and queues the rest
    schema_decoding = True  # Ollama's `format` takes a JSON schema

    @property
    def base_url(self) -> str:
        return (self.spec.api_base or self.config.ollama_base_url).rstrip("/")

    @property
    def num_ctx(self) -> int:
        # Ollama's default window (2-4k) silently truncates long prompts: demos, 77 labels, news articles.
        return self.spec.num_ctx or max(DEFAULT_NUM_CTX, 0)

    def _installed(self) -> dict[str, dict[str, Any]]:
        import ollama

        listing = ollama.Client(host=self.base_url, timeout=5).list()
        models = listing.get("models", []) if isinstance(listing, dict) else getattr(listing, "models", [])
        out = {}
        for m in models:
            item = m if isinstance(m, dict) else m.model_dump()
            name = item.get("model") or item.get("name")
            if name:
                out[_tag(name)] = item
        return out

    def problems(self) -> list[str]:
        try:
            installed = self._installed()
        except Exception as exc:  # connection refused, timeout, DNS: all mean "not reachable"
            return [f"model {self.spec.key}: Ollama is not reachable at {self.base_url} ({type(exc).__name__}): "
                    f"install and start it (https://ollama.com, then `ollama serve`) or set OLLAMA_BASE_URL"]
        if _tag(self.spec.model_id) not in installed:
            return [f"model {self.spec.model_id} is not pulled: run ./setup_models.sh "
                    f"(or: ollama pull {self.spec.model_id})"]
        return []

    def lm_model(self) -> str:
        return f"ollama_chat/{self.spec.model_id}"

    def make_lm(self, settings: LMSettings) -> MeteredLM:
        return self._lm(self.lm_model(), settings, api_base=self.base_url, num_ctx=self.num_ctx)

    def describe(self) -> dict[str, Any]:
        info = {**super().describe(), "endpoint": self.base_url, "num_ctx": self.num_ctx}
        try:
            item = self._installed().get(_tag(self.spec.model_id), {})
            info["digest"] = item.get("digest")
            details = item.get("details") or {}
            info["quantization"] = details.get("quantization_level")
            info["parameter_size"] = details.get("parameter_size")
        except Exception:  # metadata is best effort once preflight has passed
            pass
        return info

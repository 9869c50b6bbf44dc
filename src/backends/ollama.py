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
        """The first (or only) host serving the model."""
        return self.base_urls()[0]

    def base_urls(self) -> list[str]:
        return [u.rstrip("/") for u in (self.spec.api_bases or (self.config.ollama_base_url,))]

    @property
    def num_ctx(self) -> int:
        # Ollama's default window (2-4k) silently truncates long prompts: demos, 77 labels, news articles.
        return self.spec.num_ctx or max(DEFAULT_NUM_CTX, 0)

    def _installed(self, url: str | None = None) -> dict[str, dict[str, Any]]:
        import ollama

        listing = ollama.Client(host=url or self.base_url, timeout=5).list()
        models = listing.get("models", []) if isinstance(listing, dict) else getattr(listing, "models", [])
        out = {}
        for m in models:
            item = m if isinstance(m, dict) else m.model_dump()
            name = item.get("model") or item.get("name")
            if name:
                out[_tag(name)] = item
        return out

    def problems(self) -> list[str]:
        """Each host reachable, the tag pulled on each, and (several hosts) the same digest everywhere: results
        must not depend on which host answered."""
        out, digests = [], {}
        several = len(self.base_urls()) > 1
        for url in self.base_urls():
            try:
                installed = self._installed(url)
            except Exception as exc:  # connection refused, timeout, DNS: all mean "not reachable"
                out.append(f"model {self.spec.key}: Ollama is not reachable at {url} ({type(exc).__name__}): "
                           + ("start it there or remove it from api_base in models.json" if several else
                              "install and start it (https://ollama.com, then `ollama serve`) or set OLLAMA_BASE_URL"))
                continue
            item = installed.get(_tag(self.spec.model_id))
            if item is None:
                where = f" on {url}" if several else ""
                out.append(f"model {self.spec.model_id} is not pulled{where}: run ./setup_models.sh "
                           f"(or: {'OLLAMA_HOST=' + url + ' ' if several else ''}ollama pull {self.spec.model_id})")
                continue
            if item.get("digest"):
                digests[url] = item["digest"]
        if len(set(digests.values())) > 1:
            listed = ", ".join(f"{u} {d[:12]}" for u, d in digests.items())
            out.append(f"model {self.spec.key}: its hosts serve different builds of {self.spec.model_id} ({listed}): "
                       f"pull the same tag on each (ollama pull {self.spec.model_id}) so results do not depend on "
                       f"which host answered")
        return out

    def lm_model(self) -> str:
        return f"ollama_chat/{self.spec.model_id}"

    def make_lm(self, settings: LMSettings) -> MeteredLM:
        return self._lm(self.lm_model(), settings, api_base=self.base_url, num_ctx=self.num_ctx)

    def describe(self) -> dict[str, Any]:
        info = {**super().describe(), "endpoint": self.base_url, "num_ctx": self.num_ctx}
        if len(self.base_urls()) > 1:
            info["endpoints"] = self.base_urls()
        try:
            item = self._installed().get(_tag(self.spec.model_id), {})
            info["digest"] = item.get("digest")
            details = item.get("details") or {}
            info["quantization"] = details.get("quantization_level")
            info["parameter_size"] = details.get("parameter_size")
        except Exception:  # metadata is best effort once preflight has passed
            pass
        return info

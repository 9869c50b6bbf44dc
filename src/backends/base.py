"""The contract every model backend implements: preflight problems, a configured dspy.LM, and self-description."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dspy

if TYPE_CHECKING:
    from src.config import Config, ModelSpec


@dataclass(frozen=True)
class LMSettings:
    """Per-run knobs that shape the LM object (not the model's identity)."""

    concurrency: int = 1
    cache: bool = True
    num_retries: int = 3
    temperature: float | None = None  # None: the model's registered temperature (0 unless fixed)
    max_tokens: int | None = None


class Meter:
    """Running totals of an LM's calls and tokens, whichever thread made them.

    DSPy's usage tracker is copied into each worker thread of its parallel evaluator, so usage made inside an
    optimizer never reaches the caller's tracker; every call does pass through LM.update_history, which feeds this.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = self.input_tokens = self.output_tokens = self.cache_hits = 0

    def add(self, usage: dict[str, Any]) -> None:
        with self._lock:
            self.calls += 1
            if not usage:
                self.cache_hits += 1  # DSPy reports no usage for a response served from its cache
            self.input_tokens += int(usage.get("prompt_tokens") or 0)
            self.output_tokens += int(usage.get("completion_tokens") or 0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"lm_calls": self.calls, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                    "cache_hits": self.cache_hits}

    def __deepcopy__(self, memo: dict) -> Meter:
        return self  # copies of an LM (lm.copy, deepcopy of programs) keep counting into the same totals

    def __reduce__(self):
        return (Meter, ())


class MeteredLM(dspy.LM):
    """dspy.LM that also keeps a Meter; the only LM class the backend factory hands out."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.meter = Meter()

    def update_history(self, entry: dict[str, Any]) -> None:
        self.meter.add(entry.get("usage") or {})
        super().update_history(entry)


class Backend:
    """One provider kind. Subclasses set `provider` and implement problems/make_lm."""

    provider = "?"
    default_concurrency = 4
    schema_decoding = False  # can enforce a JSON schema while decoding (needed by --adapter structured)

    def __init__(self, spec: ModelSpec, config: Config):
        self.spec = spec
        self.config = config

    def problems(self) -> list[str]:
        """Everything that would stop this model from running, one line each with the fix; [] when ready."""
        return []

    def make_lm(self, settings: LMSettings) -> dspy.LM:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Facts about the model for metadata: provider, id, digest, endpoint. Never a key."""
        return {"provider": self.spec.provider, "model_id": self.spec.model_id}

    def supports_schema(self) -> bool:
        return self.schema_decoding or self.spec.schema_decoding

    def _lm(self, model: str, settings: LMSettings, **kwargs: Any) -> dspy.LM:
        temperature = settings.temperature if settings.temperature is not None else self.spec.temperature
        if self.spec.fixed_temperature is not None:
            temperature = self.spec.fixed_temperature
        return MeteredLM(
            model,
            temperature=temperature,
            max_tokens=settings.max_tokens or self.spec.max_tokens,
            cache=settings.cache,
            num_retries=settings.num_retries,
            **kwargs,
        )


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
    def api_base(self) -> str | None:
        return self.spec.api_base or os.environ.get(self.base_env) or None

    def problems(self) -> list[str]:
        if not os.environ.get(self.api_key_env, "").strip():
            return [f"model {self.spec.key}: {self.api_key_env} is not set: put it in .env (see .env.example) "
                    f"or export it"]
        return []

    def make_lm(self, settings: LMSettings) -> dspy.LM:
        kwargs: dict[str, Any] = {"api_key": os.environ.get(self.api_key_env)}
        if self.api_base:
            kwargs["api_base"] = self.api_base
        return self._lm(f"{self.litellm_prefix}/{self.spec.model_id}", settings, **kwargs)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "endpoint": self.api_base or self.default_endpoint}

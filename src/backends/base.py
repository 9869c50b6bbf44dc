"""The contract every model backend implements: preflight problems, a configured dspy.LM, and self-description."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from src.backends.metering import MeteredLM
from src.backends.retry import RetryPolicy, timeout_for

if TYPE_CHECKING:
    from src.registry import Config, ModelSpec


@dataclass(frozen=True)
class LMSettings:
    """Per-run knobs that shape the LM object (not the model's identity)."""

    concurrency: int = 1
    cache: bool = True
    temperature: float | None = None  # None: the model's registered temperature (0 unless fixed)
    max_tokens: int | None = None


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

    def make_lm(self, settings: LMSettings) -> MeteredLM:
        """The configured LM for this run; only src.backends.session calls it."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Facts about the model for metadata: provider, id, digest, endpoint. Never a key."""
        return {"provider": self.spec.provider, "model_id": self.spec.model_id}

    def supports_schema(self) -> bool:
        return self.schema_decoding or self.spec.schema_decoding

    def retry_policy(self) -> RetryPolicy:
        """Attempts and the request timeout: the provider's default, or the model's own (models.json)."""
        return RetryPolicy(timeout_s=timeout_for(self.spec.provider, self.spec.request_timeout_s,
                                                 self.spec.supports_thinking))

    def _lm(self, model: str, settings: LMSettings, **kwargs: Any) -> MeteredLM:
        temperature = settings.temperature if settings.temperature is not None else self.spec.temperature
        if self.spec.fixed_temperature is not None:
            temperature = self.spec.fixed_temperature
        policy = self.retry_policy()
        return MeteredLM(
            model,
            temperature=temperature,
            max_tokens=settings.max_tokens or self.spec.max_tokens,
            cache=settings.cache,
            retry=policy,
            timeout=policy.timeout_s,
            **kwargs,
        )

"""The contract every model backend implements: preflight problems, a configured dspy.LM, and self-description."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from src.backends.endpoints import DEFAULT_BUDGET, endpoint_id, make_router
from src.backends.failures import Endpoint
from src.backends.metering import MeteredLM
from src.backends.retry import RetryPolicy, timeout_for
from src.results.provenance import register_secret

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
    default_endpoint = ""  # where requests go when the model names no api_base
    # Are tasks' generation bounds (src.tasks.bounds) applied to this provider's models? Only where a truncated
    # answer cannot bias a verdict; a real API or Ollama model keeps its own generous max_tokens.
    task_bounds = False

    @property
    def credential_env(self) -> str | None:
        """The environment variable holding this model's key (None: it needs none)."""
        return None

    def __init__(self, spec: ModelSpec, config: Config):
        self.spec = spec
        self.config = config

    def problems(self) -> list[str]:
        """Everything that would stop this model from running, one line each with the fix; [] when ready."""
        return []

    def lm_model(self) -> str:
        """The model string the LM client is given (provider prefix and model), without starting anything."""
        raise NotImplementedError

    def make_lm(self, settings: LMSettings) -> MeteredLM:
        """The configured LM for this run; only src.backends.session calls it."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Facts about the model for metadata: provider, id, digest, endpoint. Never a key."""
        return {"provider": self.spec.provider, "model_id": self.spec.model_id}

    def base_urls(self) -> list[str]:
        """Every base URL the model is served at; several (models.json `api_base` as a list) share its requests."""
        return list(self.spec.api_bases) or [self.default_endpoint or self.provider]

    def budget_name(self, url: str) -> str:
        """The endpoint whose budget a request to `url` takes (src.backends.endpoints)."""
        return endpoint_id(url, self.spec.model_id)

    def endpoint_limit(self, concurrency: int = 1) -> tuple[int, bool]:
        """(requests in flight per endpoint, set by configuration?): models.json / the study file's
        `endpoint_concurrency`, else the provider's default, raised to a runner's --concurrency."""
        if self.spec.endpoint_concurrency:
            return self.spec.endpoint_concurrency, True
        return max(DEFAULT_BUDGET.get(self.provider, self.default_concurrency), concurrency), False

    def supports_schema(self) -> bool:
        return self.schema_decoding or self.spec.schema_decoding

    def retry_policy(self) -> RetryPolicy:
        """Attempts and the request timeout: the provider's default, or the model's own (models.json)."""
        return RetryPolicy(timeout_s=timeout_for(self.spec.provider, self.spec.request_timeout_s,
                                                 self.spec.supports_thinking))

    def generation(self, settings: LMSettings) -> tuple[float, int]:
        """(temperature, max_tokens) the LM is made with: the run's, else the model's; a fixed temperature wins."""
        temperature = settings.temperature if settings.temperature is not None else self.spec.temperature
        if self.spec.fixed_temperature is not None:
            temperature = self.spec.fixed_temperature
        return temperature, settings.max_tokens or self.spec.max_tokens

    def _lm(self, model: str, settings: LMSettings, **kwargs: Any) -> MeteredLM:
        temperature, max_tokens = self.generation(settings)
        policy = self.retry_policy()
        key_env = self.credential_env
        if key_env and kwargs.get("api_key"):
            register_secret(kwargs["api_key"])  # whatever the variable is called, its value is never written
        endpoint = Endpoint(kwargs.get("api_base") or self.default_endpoint or self.provider, key_env,
                            policy.timeout_s)
        urls = self.base_urls()
        if len(urls) == 1:  # the one URL the client is given (the embedded server's is known only once started)
            urls = [kwargs.get("api_base") or urls[0]]
        limit, explicit = self.endpoint_limit(settings.concurrency)
        router = make_router(urls, [self.budget_name(u) for u in urls], limit, explicit)
        engine = self.engine(kwargs.get("api_base"), policy.timeout_s)
        if engine is not None:  # a custom engine owns its connection: DSPy refuses api_base, key and timeout beside it
            client = {"engine": engine, **engine.request_kwargs(),
                      **{k: v for k, v in kwargs.items() if k not in ("api_base", "api_key")}}
        else:
            client = {"timeout": policy.timeout_s, **kwargs}
        return MeteredLM(
            model,
            temperature=temperature,
            max_tokens=max_tokens,
            cache=settings.cache,
            retry=policy,
            endpoint=endpoint,
            router=router,
            **client,
        )

    def engine(self, api_base: str | None, timeout_s: float | None) -> Any:
        """A DSPy engine of the backend's own for requests to `api_base`, or None: DSPy's (the default). An engine
        has request_kwargs(): what every request it serves carries (part of DSPy's cache key)."""
        return None

"""Model sessions: a model made ready for a run, built once from its spec, with the run's adapter, concurrency and
LM settings decided here and nowhere else; and preflight over the same objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dspy

from src.backends import backend_for
from src.backends.adapters import build_adapter, choose_adapter
from src.backends.base import Backend, LMSettings
from src.backends.metering import MeteredLM
from src.errors import PreflightError

if TYPE_CHECKING:
    from src.registry import Config, ModelSpec


@dataclass(frozen=True)
class SessionOptions:
    """The run's requests (command-line flags); None means the model's own default."""

    adapter: str | None = None
    concurrency: int | None = None
    cache: bool = True
    max_tokens: int | None = None


def concurrency_for(backend: Backend, requested: int | None) -> int:
    """Examples in flight for a model: --concurrency if given, else its backend's default."""
    return requested or backend.default_concurrency


@dataclass
class ModelSession:
    """A model made ready for a run: backend, LM and adapter, created once and shared by all its units."""

    spec: ModelSpec
    backend: Backend
    lm: MeteredLM
    adapter: dspy.Adapter
    adapter_name: str
    concurrency: int
    options: SessionOptions = field(default_factory=SessionOptions)

    @classmethod
    def open(cls, backend: Backend, options: SessionOptions) -> ModelSession:
        conc = concurrency_for(backend, options.concurrency)
        lm = backend.make_lm(LMSettings(concurrency=conc, cache=options.cache, max_tokens=options.max_tokens))
        name = choose_adapter(backend.spec, options.adapter)
        return cls(backend.spec, backend, lm, build_adapter(name, backend.spec), name, conc, options)

    def lm_facts(self) -> dict[str, Any]:
        """The LM's settings as a sidecar records them (never the key)."""
        kw = dict(self.lm.kwargs)
        kw.pop("api_key", None)
        return {"model": self.lm.model, "temperature": kw.get("temperature"),
                "max_tokens": kw.get("max_tokens") or kw.get("max_completion_tokens"),
                "num_ctx": kw.get("num_ctx"), "cache": self.options.cache,
                "retry_attempts": self.lm.retry.attempts, "request_timeout_s": self.lm.retry.timeout_s}


class Sessions:
    """One run's models: each spec is looked up and its Backend built once; preflight and every session use them."""

    def __init__(self, config: Config, options: SessionOptions | None = None):
        self.config = config
        self.options = options or SessionOptions()
        self._backends: dict[str, Backend] = {}
        self._sessions: dict[tuple[str, int | None, str | None], ModelSession] = {}

    def backend(self, key: str) -> Backend:
        if key not in self._backends:
            self._backends[key] = backend_for(self.config.model(key), self.config)
        return self._backends[key]

    def spec(self, key: str) -> ModelSpec:
        return self.backend(key).spec

    def problems(self, keys: list[str], adapter: str | None = None) -> list[str]:
        """Everything that would stop these models from running, one line each with its fix."""
        out: list[str] = []
        for key in dict.fromkeys(keys):
            backend = self.backend(key)
            out.extend(backend.problems())
            wanted = choose_adapter(backend.spec, adapter if adapter is not None else self.options.adapter)
            if wanted == "structured" and not backend.supports_schema():
                out.append(f"model {key}: --adapter structured needs schema-constrained decoding, which "
                           f"{backend.provider} model {backend.spec.model_id} is not registered to support: "
                           f"use --adapter chat or json (or set schema_decoding in models.json)")
        return out

    def preflight(self, keys: list[str], adapter: str | None = None) -> None:
        """Check every model before any work starts; one PreflightError lists every problem."""
        problems = self.problems(keys, adapter)
        if problems:
            raise PreflightError(problems)

    def session(self, key: str, *, max_tokens: int | None = None, adapter: str | None = None) -> ModelSession:
        """The model's session for this run (one per model and generation cap), opened on first use."""
        cache_key = (key, max_tokens, adapter)
        if cache_key not in self._sessions:
            opts = SessionOptions(adapter=adapter or self.options.adapter, concurrency=self.options.concurrency,
                                  cache=self.options.cache, max_tokens=max_tokens or self.options.max_tokens)
            self._sessions[cache_key] = ModelSession.open(self.backend(key), opts)
        return self._sessions[cache_key]


def meter_delta(before: dict[str, dict[str, int]], sessions: list[ModelSession]) -> dict[str, Any]:
    """Calls, tokens and $ per model key (student and teacher apart) since `before`, and totals."""
    per_model: dict[str, dict[str, Any]] = {}
    for session in {s.spec.key: s for s in sessions}.values():
        now = session.lm.meter.snapshot()
        then = before[session.spec.key]
        row = {k: now[k] - then[k] for k in now}
        row["cost_usd"] = round(session.spec.cost_usd(row["input_tokens"], row["output_tokens"]), 6)
        per_model[session.spec.key] = row
    totals = {k: sum(r[k] for r in per_model.values()) for k in ("lm_calls", "input_tokens", "output_tokens",
                                                                   "cache_hits")}
    totals["cost_usd"] = round(sum(r["cost_usd"] for r in per_model.values()), 6)
    return {"by_model": per_model, **totals}

"""Model sessions: a model made ready for a run, built once from its spec, with the run's adapter, concurrency and
LM settings decided here and nowhere else; and preflight over the same objects.

Preflight also asks DSPy's LM client whether it accepts each model's settings (constructing an LM sends nothing), so
a model the client refuses - an OpenAI reasoning model below max_tokens 16000 or at a temperature other than 1 -
fails before any work, with the fix. A budget's generation cap (the quick preset's 192 tokens) is a speed limit for
models that can take it: a model the client refuses under the cap runs with its own max_tokens instead, said at
preflight and recorded in every sidecar's `lm` facts, rather than the stage dying half-way or the model spending
the whole cap on hidden reasoning.

A task's generation bound (src.tasks.bounds: its longest gold answer with a margin) narrows the cap further for a
backend that applies task bounds (the embedded models): `Sessions.for_task`. All sessions of one model share one
Meter, so what a stage spent on a model is counted once whatever the caps it ran under.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dspy

from src.backends import backend_for
from src.backends.adapters import build_adapter, choose_adapter
from src.backends.base import Backend, LMSettings
from src.backends.dspy_compat import load_litellm, memoize_model_metadata
from src.backends.metering import MeteredLM, SpendCap
from src.errors import PreflightError

if TYPE_CHECKING:
    from src.registry import Config, ModelSpec


# Providers whose chat API takes a per-request `seed` (llama.cpp's server, OpenAI and compatible servers, Ollama).
SEEDED_PROVIDERS = ("embedded", "openai", "openai_compatible", "ollama")


@dataclass(frozen=True)
class SessionOptions:
    """The run's requests (command-line flags); None means the model's own default."""

    adapter: str | None = None
    concurrency: int | None = None
    cache: bool = True
    max_tokens: int | None = None
    max_cost: float | None = None  # --max-cost USD: no API request starts once the next one could exceed it
    spend_ledger: Path | None = None  # a study's running spend across its stages (src.backends.metering.SpendCap)


def client_refusal(model: str, temperature: float | None, max_tokens: int | None) -> str | None:
    """Why DSPy's LM client refuses these settings for `model`, or None (constructing an LM sends no request)."""
    def refused(t: float | None, m: int | None) -> str | None:
        try:
            dspy.LM(model, temperature=t, max_tokens=m, cache=False, num_retries=0)
        except dspy.LMConfigurationError as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return text.removeprefix(f"[{model}] ")
        return None

    why = refused(temperature, max_tokens)
    # The client lets temperature 0 through (it only checks a non-zero one) although the same models' APIs refuse
    # it: a model the client refuses at temperature 0.5 needs temperature 1.
    if why is None and temperature not in (None, 1.0):
        family = refused(0.5, None)
        if family:
            why = f"{family} (temperature {temperature:g} given)"
    return why


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
    cap_note: str = ""  # why a requested generation cap was not applied to this model
    task_bound: int | None = None  # the task's generation bound this session applies (src.tasks.bounds)
    _attempts: dict[int, MeteredLM] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, backend: Backend, options: SessionOptions, cap_note: str = "",
             spend: SpendCap | None = None, task_bound: int | None = None) -> ModelSession:
        conc = concurrency_for(backend, options.concurrency)
        lm = backend.make_lm(LMSettings(concurrency=conc, cache=options.cache, max_tokens=options.max_tokens))
        load_litellm(lm)  # before any request thread exists (src.backends.dspy_compat says why)
        memoize_model_metadata()
        lm.spend, lm.prices, lm.label = spend, (backend.spec.price_in or 0.0, backend.spec.price_out or 0.0), \
            backend.spec.key
        name = choose_adapter(backend.spec, options.adapter)
        return cls(backend.spec, backend, lm, build_adapter(name, backend.spec), name, conc, options, cap_note,
                   task_bound)

    def attempt_lm(self, repeat: int) -> MeteredLM:
        """The LM for attempt `repeat` of an example (--repeats): attempt 0 is the session's LM; a later attempt
        has its own rollout_id, so DSPy's response cache never serves one attempt's answer for another (cached
        calls must not fake agreement), and its own seed where the backend takes one. At temperature 0 a seed
        changes nothing: repeats then measure the server's own nondeterminism."""
        if repeat == 0:
            return self.lm
        if repeat not in self._attempts:
            extra: dict[str, Any] = {"rollout_id": repeat}
            if self.spec.provider in SEEDED_PROVIDERS:
                extra["seed"] = repeat
            elif not self.lm.kwargs.get("temperature"):
                extra["cache"] = False  # DSPy warns rollout_id may not separate greedy requests: never reuse one
            self._attempts[repeat] = self.lm.copy(**extra)
        return self._attempts[repeat]

    @property
    def spend(self) -> SpendCap | None:
        """The run's spending cap (None: no --max-cost)."""
        return self.lm.spend

    def lm_facts(self) -> dict[str, Any]:
        """The LM's settings as a sidecar records them (never the key)."""
        kw = dict(self.lm.kwargs)
        kw.pop("api_key", None)
        facts = {"model": self.lm.model, "temperature": kw.get("temperature"),
                 "max_tokens": kw.get("max_tokens") or kw.get("max_completion_tokens"),
                 "num_ctx": kw.get("num_ctx"), "cache": self.options.cache,
                 "retry_attempts": self.lm.retry.attempts, "request_timeout_s": self.lm.retry.timeout_s,
                 "max_backoff_s": self.lm.retry.max_backoff_s}
        if self.cap_note:
            facts["max_tokens_cap_not_applied"] = self.cap_note
        if self.task_bound is not None:
            facts["task_generation_bound"] = self.task_bound
        guard = (kw.get("metadata") or {}).get("loop_guard")
        if guard:
            facts["loop_guard"] = guard  # replies stopped when they loop, under this version of the rule
        return facts


class Sessions:
    """One run's models: each spec is looked up and its Backend built once; preflight and every session use them."""

    def __init__(self, config: Config, options: SessionOptions | None = None):
        self.config = config
        self.options = options or SessionOptions()
        self._backends: dict[str, Backend] = {}
        self._sessions: dict[tuple[str, int | None, str | None], ModelSession] = {}
        o = self.options
        self.spend = SpendCap(o.max_cost, o.spend_ledger) if o.max_cost is not None else None  # one cap per run
        self._meters: dict[str, Any] = {}  # one Meter per model, shared by its sessions

    def backend(self, key: str) -> Backend:
        if key not in self._backends:
            self._backends[key] = backend_for(self.config.model(key), self.config)
        return self._backends[key]

    def spec(self, key: str) -> ModelSpec:
        return self.backend(key).spec

    def refusal(self, key: str, max_tokens: int | None = None) -> str | None:
        """Why the LM client refuses `key` under the run's settings (a cap of `max_tokens`), or None."""
        backend = self.backend(key)
        temperature, tokens = backend.generation(LMSettings(max_tokens=max_tokens))
        return client_refusal(backend.lm_model(), temperature, tokens)

    def applied_cap(self, key: str, cap: int | None) -> tuple[int | None, str]:
        """(the generation cap `key` runs under, why a requested cap is not applied ('' when it is)). A cap the
        client refuses for a model whose own settings it accepts is not applied: the model keeps its max_tokens."""
        if cap is None or self.refusal(key, cap) is None or self.refusal(key) is not None:
            return cap, ""
        own = self.spec(key).max_tokens
        return None, (f"model {key}: the budget's generation cap of {cap} tokens is not applied (the LM client "
                      f"refuses it: {self.refusal(key, cap)}); it runs with its own max_tokens {own}")

    def problems(self, keys: list[str], adapter: str | None = None) -> list[str]:
        """Everything that would stop these models from running, one line each with its fix."""
        out: list[str] = []
        for key in dict.fromkeys(keys):
            backend = self.backend(key)
            out.extend(backend.problems())
            refused = self.refusal(key)
            if refused:
                temperature, tokens = backend.generation(LMSettings())
                out.append(f"model {key}: the LM client refuses its settings (temperature {temperature:g}, max_tokens "
                           f"{tokens}): {refused}; set fixed_temperature and max_tokens for '{key}' in models.json")
            wanted = choose_adapter(backend.spec, adapter if adapter is not None else self.options.adapter)
            if wanted == "structured" and not backend.supports_schema():
                out.append(f"model {key}: --adapter structured needs schema-constrained decoding, which "
                           f"{backend.provider} model {backend.spec.model_id} is not registered to support: "
                           f"use --adapter chat or json (or set schema_decoding in models.json)")
        return out

    def preflight(self, keys: list[str], adapter: str | None = None, *, max_tokens: int | None = None,
                  capped: list[str] | None = None) -> None:
        """Check every model before any work starts; one PreflightError lists every problem. `max_tokens`: the
        generation cap the stage will ask of the `capped` models (default: all); one that cannot take it is named
        on stderr, and runs with its own max_tokens."""
        problems = self.problems(keys, adapter)
        if problems:
            raise PreflightError(problems)
        for key in dict.fromkeys(keys if capped is None else capped):
            note = self.applied_cap(key, max_tokens)[1]
            if note:
                print(f"note: {note}", file=sys.stderr)

    def session(self, key: str, *, max_tokens: int | None = None, adapter: str | None = None) -> ModelSession:
        """The model's session for this run (one per model and generation cap), opened on first use."""
        cache_key = (key, max_tokens, adapter)
        if cache_key not in self._sessions:
            cap, note = self.applied_cap(key, max_tokens or self.options.max_tokens)
            opts = SessionOptions(adapter=adapter or self.options.adapter, concurrency=self.options.concurrency,
                                  cache=self.options.cache, max_tokens=cap, max_cost=self.options.max_cost,
                                  spend_ledger=self.options.spend_ledger)
            self._open(cache_key, opts, note)
        return self._sessions[cache_key]

    def _open(self, cache_key: tuple[str, int | None, str | None], opts: SessionOptions, note: str = "",
              task_bound: int | None = None) -> None:
        opened = ModelSession.open(self.backend(cache_key[0]), opts, note, self.spend, task_bound)
        opened.lm.meter = self._meters.setdefault(cache_key[0], opened.lm.meter)
        self._sessions[cache_key] = opened

    def for_task(self, key: str, bound: int | None, *, max_tokens: int | None = None,
                 adapter: str | None = None) -> ModelSession:
        """The model's session for a unit whose task bounds generation at `bound` tokens (None: unbounded): the
        narrower of the run's cap and the bound where the model's backend applies task bounds, else `session`."""
        backend = self.backend(key)
        if bound is None or not backend.task_bounds:
            return self.session(key, max_tokens=max_tokens, adapter=adapter)
        cap = self.applied_cap(key, max_tokens or self.options.max_tokens)[0] or backend.generation(LMSettings())[1]
        if bound >= cap:
            return self.session(key, max_tokens=max_tokens, adapter=adapter)
        cache_key = (key, -bound, adapter)  # negative: a task bound, never confused with a run cap of that size
        if cache_key not in self._sessions:
            opts = SessionOptions(adapter=adapter or self.options.adapter, concurrency=self.options.concurrency,
                                  cache=self.options.cache, max_tokens=bound, max_cost=self.options.max_cost,
                                  spend_ledger=self.options.spend_ledger)
            self._open(cache_key, opts, task_bound=bound)
        return self._sessions[cache_key]

    def unit_session(self, key: str, *, max_tokens: int | None = None, adapter: str | None = None,
                     bound: int | None = None) -> ModelSession:
        """A session of its own for one unit that runs beside other units of the same model (the study scheduler):
        the same backend and settings as for_task() (session() when `bound` is None), a fresh LM object so that its
        meter and the endpoints it used count only this unit's requests. Endpoint budgets are per endpoint, shared
        with every other session."""
        shared = self.for_task(key, bound, max_tokens=max_tokens, adapter=adapter)
        return ModelSession.open(shared.backend, shared.options, shared.cap_note, self.spend, shared.task_bound)


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

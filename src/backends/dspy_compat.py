"""Every private DSPy API this product touches, in one place (tests/test_dspy_compat.py pins each one against the
installed DSPy, so an upgrade that moves them fails loudly here instead of silently elsewhere).

Why each is needed:
- the structured adapter sends the signature's JSON schema itself, which DSPy's JSONAdapter only does for models
  it can look up in its capability tables (`_get_structured_outputs_response_format`, `_has_open_ended_mapping`);
- the optimization runner projects MIPROv2's LM calls before spending any, with MIPROv2's own arithmetic
  (`_set_random_seeds`, `_set_num_trials_from_num_candidates`, `_estimate_lm_calls`, `AUTO_RUN_SETTINGS`,
  `MIN_MINIBATCH_SIZE`), whose results DSPy only returns as display strings (parsed here);
- GEPA's metric must return DSPy's `ScoreWithFeedback`;
- DSPy imports LiteLLM lazily on the first request (`dspy.clients._litellm.get_litellm`), unguarded: the first
  requests of a unit, sent from several threads at once, raced on that import and one failed with "partially
  initialized module 'litellm' has no attribute 'completion'" (seen through the rehearsal's OpenAI stand-in, as
  a backend error recorded for its example). A session whose requests DSPy will send through LiteLLM
  (`dspy.clients.backend_selection.select_backend`: not native, e.g. Ollama, or any model while
  OPENAI_BASE_URL-style gateway variables are set) loads it once, in the thread that opens it; a native one
  (the embedded server, an OpenAI-compatible api_base) never pays LiteLLM's import (~7 s of CPU on 2 cores);
- DSPy prices and plans every request from its model metadata (`dspy.clients.model_metadata.model_info`, read by
  `dspy.clients.costs` and `dspy.clients.capabilities`), and a model the map does not know — every local model,
  every stand-in — costs a scan of the whole map per lookup (0.66 ms, several lookups per request, under the GIL:
  py-spy put it at two thirds of the engine's own CPU in benchmarks/bench_study.py). The lookups are pure once
  the map is loaded, so sessions memoize them (`memoize_model_metadata`);
- the embedded models' engine (src.backends.embedded.loop_guard) streams through DSPy's own native engine
  (`dspy.clients.engines.lm15_engine.LM15Engine`, configured as DSPy configures it for an OpenAI-compatible
  api_base), folds the stream with lm15's `StreamAccumulator` as DSPy does, and, for a reply it stops, reads the
  chat messages the provider sends (`_target`, the chat provider's `_payload`) to have the server count the prompt.
"""

from __future__ import annotations

import copy
import re
import threading
from typing import Any

import dspy
from dspy.adapters.json_adapter import _get_structured_outputs_response_format, _has_open_ended_mapping
from dspy.clients._litellm import get_litellm
from dspy.clients import capabilities as _capabilities
from dspy.clients import costs as _costs
from dspy.clients import model_metadata as _model_metadata
from dspy.clients.backend_selection import select_backend
from dspy.clients.engines.lm15_engine import LM15Engine, timeouts_for
from dspy._vendor.lm15 import RouterConfig
from dspy._vendor.lm15.result import StreamAccumulator
from dspy.teleprompt.gepa.gepa import ScoreWithFeedback
from dspy.teleprompt.mipro_optimizer_v2 import AUTO_RUN_SETTINGS, MIN_MINIBATCH_SIZE

__all__ = ["ScoreWithFeedback", "StreamAccumulator", "chat_wire_payload", "has_open_ended_mapping", "load_litellm",
           "memoize_model_metadata", "mipro_projected_calls", "native_engine", "structured_response_format"]

_ORIGINAL_MODEL_INFO = _model_metadata.model_info
_memo: dict[tuple[Any, ...], dict[str, Any]] = {}
_memo_lock = threading.Lock()


def _memoized_model_info(provider: Any, model: Any, *, namespaces: Any = None) -> dict[str, Any]:
    """model_info, looked up once per (provider, model, namespaces); a copy each time, as the original returns."""
    key = (provider, model, tuple(namespaces) if namespaces is not None else None)
    found = _memo.get(key)
    if found is None:
        found = _ORIGINAL_MODEL_INFO(provider, model, namespaces=namespaces)
        with _memo_lock:
            _memo[key] = found
    return copy.deepcopy(found)


def memoize_model_metadata() -> None:
    """Make DSPy's per-request metadata lookups (pricing, capability planning) memoized (idempotent)."""
    _costs.model_info = _memoized_model_info
    _capabilities.model_info = _memoized_model_info


def load_litellm(lm: dspy.LM) -> bool:
    """When DSPy will send `lm`'s requests through LiteLLM, import LiteLLM now, in this thread, the way dspy.LM does
    on its first request (idempotent, cached by DSPy), so that no two request threads race on a half-imported
    module. Returns whether it did."""
    try:
        native = select_backend(lm, None).native
    except Exception:  # noqa: BLE001 - a selection DSPy itself would refuse later: assume the compatibility engine
        native = False
    if not native:
        get_litellm(feature="dspy.LM")
    return not native


def native_engine(model: str, api_base: str, api_key: str, timeout_s: float | None) -> LM15Engine:
    """DSPy's native (lm15) engine for `model` at an OpenAI-compatible api_base, configured as dspy.LM configures it
    for that model, api_base, api_key and timeout (its provider as DSPy resolves it: `openai-chat`)."""
    probe = dspy.LM(model, api_base=api_base, api_key=api_key, timeout=timeout_s)
    provider = select_backend(probe, {}).resolution.provider
    config = RouterConfig(api_keys={provider: api_key}, base_urls={provider: api_base},
                          timeouts=timeouts_for(timeout_s))
    return LM15Engine(config, model_type="chat")


def chat_wire_payload(engine: LM15Engine, request: Any) -> dict[str, Any]:
    """The JSON body `engine` sends for `request` when streaming it (messages as the server receives them)."""
    provider, routed = engine._target(request, streaming=True)
    return provider._payload(routed, stream=True)


def structured_response_format(signature: type[dspy.Signature], use_native_function_calling: bool) -> Any:
    """The response_format (JSON schema) DSPy's JSONAdapter would send for `signature` to a schema-capable model."""
    return _get_structured_outputs_response_format(signature, use_native_function_calling)


def has_open_ended_mapping(signature: type[dspy.Signature]) -> bool:
    """Does an output field allow arbitrary keys (no strict schema possible)?"""
    return _has_open_ended_mapping(signature)


def mipro_projected_calls(program: dspy.Module, metric: Any, mipro: dict[str, Any], compile_args: dict[str, Any],
                          n_train: int) -> tuple[int, int, int]:
    """(prompt-model calls, task-model calls, few-shot candidate sets) MIPROv2 will make for these settings, by its
    own estimate (an upper bound it prints before compiling)."""
    placeholder = dspy.LM("openai/projection-only")  # never called: MIPROv2 insists on models to exist
    opt = dspy.MIPROv2(metric=metric, prompt_model=placeholder, task_model=placeholder, **mipro)
    opt._set_random_seeds(0)
    valset_size = min(1000, max(1, int(n_train * 0.80)))
    zeroshot = not (opt.max_bootstrapped_demos or opt.max_labeled_demos)
    trials = compile_args.get("num_trials")
    minibatch = compile_args.get("minibatch", True)
    n_fewshot = n_instr = opt.num_candidates
    if opt.auto:
        s = AUTO_RUN_SETTINGS[opt.auto]
        valset_size = min(valset_size, s["val_size"])
        minibatch = valset_size > MIN_MINIBATCH_SIZE
        n_fewshot = s["n"]
        n_instr = s["n"] if zeroshot else int(s["n"] * 0.5)
        trials = opt._set_num_trials_from_num_candidates(program, zeroshot, s["n"])
    mb_size = min(compile_args.get("minibatch_size", 35), valset_size)
    aware = compile_args.get("program_aware_proposer", True)
    prompt_line, task_line = opt._estimate_lm_calls(program, trials, minibatch, mb_size,
                                                    compile_args.get("minibatch_full_eval_steps", 5),
                                                    [None] * valset_size, aware, n_instr)
    return _last_number(prompt_line), _last_number(task_line), n_fewshot * max(0, n_train - valset_size)


def _last_number(line: str) -> int:
    """The total at the end of one of MIPROv2's ANSI-coloured estimate lines ("... = 42")."""
    numbers = re.findall(r"=\s*(?:\x1b\[[0-9;]*m)*(\d+)", line)
    return int(numbers[-1]) if numbers else 0

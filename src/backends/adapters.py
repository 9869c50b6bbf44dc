"""The three ways a signature is put to a model (--adapter chat|json|structured), with one set of parsing rules."""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import Any, Literal, get_args, get_origin

import dspy
from dspy.utils.exceptions import AdapterParseError

from src.backends.dspy_compat import has_open_ended_mapping, structured_response_format
from src.errors import UserError
from src.registry.specs import ADAPTERS, ModelSpec
from src.tasks.metrics import match_label

# Reasoning models (qwen3, deepseek-r1) emit <think>...</think> before the answer; some chat templates open the
# tag in the prompt so only the closing tag reaches us.
_THINK_BLOCK = re.compile(r"<think>(.*?)</think>", re.DOTALL | re.IGNORECASE)
_CHARS_PER_TOKEN = 4.0  # thinking length is reported in estimated tokens; no tokenizer is shared by all backends

# The engine installs a list here per example; the adapter appends every trace it removes.
thinking_traces: ContextVar[list[str] | None] = ContextVar("thinking_traces", default=None)


def strip_thinking(text: str) -> tuple[str, str]:
    """(visible answer, removed thinking). An unterminated <think> means the whole reply was thinking."""
    if not text:
        return text, ""
    traces = _THINK_BLOCK.findall(text)
    visible = _THINK_BLOCK.sub("", text)
    lower = visible.lower()
    if "</think>" in lower:  # opening tag was part of the prompt template
        cut = lower.rindex("</think>")
        traces.insert(0, visible[:cut])
        visible = visible[cut + len("</think>"):]
    elif "<think>" in lower:  # truncated while thinking
        cut = lower.index("<think>")
        traces.append(visible[cut + len("<think>"):])
        visible = visible[:cut]
    return visible.strip(), "\n".join(t.strip() for t in traces).strip()


def estimate_tokens(text: str) -> int:
    return round(len(text) / _CHARS_PER_TOKEN) if text else 0


def _relaxed(signature: type[dspy.Signature]) -> tuple[type[dspy.Signature] | None, dict[str, tuple]]:
    """The signature with Literal outputs read as plain text, and each such field's allowed values."""
    choices = {name: get_args(f.annotation) for name, f in signature.output_fields.items()
               if get_origin(f.annotation) is Literal}
    relaxed = signature
    for name in choices:
        relaxed = relaxed.with_updated_fields(name, type_=str)
    return (relaxed if choices else None), choices


class _Tolerant:
    """Parsing rules shared by every adapter here:

    - <think>...</think> traces are removed before parsing and handed to the engine (reasoning models);
    - a Literal output that names an allowed value up to case, spaces, hyphens or underscores ("Card Arrival" for
      card_arrival) is that value, and one outside the list is kept as text for the metric to mark wrong:
      a parse failure means the reply had no readable fields, not that the model chose badly.
    """

    def parse(self, signature: type[dspy.Signature], completion: str) -> dict[str, Any]:
        visible, thinking = strip_thinking(completion)
        if thinking:
            sink = thinking_traces.get()
            if sink is not None:
                sink.append(thinking)
        try:
            return super().parse(signature, visible)  # type: ignore[misc]
        except AdapterParseError:
            relaxed, choices = _relaxed(signature)
            if relaxed is None:
                raise
            fields = super().parse(relaxed, visible)  # type: ignore[misc]  # still unreadable: a real failure
            for name, allowed in choices.items():
                text = fields.get(name)
                named = match_label(text, [str(a) for a in allowed]) if text is not None else None
                fields[name] = next((a for a in allowed if str(a) == named), text)
            return fields


class ChatAdapter(_Tolerant, dspy.ChatAdapter):
    """DSPy's default field-marker format (as the original study ran)."""


class JSONAdapter(_Tolerant, dspy.JSONAdapter):
    """JSON object output; sends a schema only where DSPy knows the model supports one."""


class StructuredAdapter(_Tolerant, dspy.JSONAdapter):
    """JSON output with the signature's JSON schema always sent as response_format.

    The backend enforces it while decoding (llama.cpp grammar, Ollama `format`, OpenAI structured outputs), so
    the reply always parses. DSPy's own JSONAdapter sends no schema to endpoints it cannot look up in its
    capability tables (any `openai/<local name>` server), which is why this adapter exists.
    """

    def user_message_output_requirements(self, signature: type[dspy.Signature]) -> str:
        # JSONAdapter repeats every field's type here, after the variable input, so a 77-label Literal costs ~700
        # uncacheable prompt tokens per call. The enforced schema (and the system message) already carry the types.
        return "Respond with a JSON object with the fields " + ", ".join(f"`{f}`" for f in signature.output_fields) + "."

    def _prepare_response_format(self, lm, lm_kwargs, signature):
        if has_open_ended_mapping(signature):
            lm_kwargs["response_format"] = {"type": "json_object"}
            return
        lm_kwargs["response_format"] = structured_response_format(signature, self.use_native_function_calling)


def choose_adapter(spec: ModelSpec, requested: str | None) -> str:
    """The adapter a model runs with, decided here only: --adapter if given, else the model's registered
    default_adapter, else structured for embedded models (llama.cpp enforces the schema; SmolLM2 cannot follow
    the chat format) and chat for every other model (DSPy's default, as the original study ran)."""
    if requested:
        return requested
    if spec.default_adapter:
        return spec.default_adapter
    return "structured" if spec.provider == "embedded" else "chat"


def build_adapter(name: str, spec: ModelSpec) -> dspy.Adapter:
    """The adapter object for a name choose_adapter returned."""
    if name not in ADAPTERS:
        raise UserError(f"--adapter must be one of {', '.join(ADAPTERS)}, not '{name}'")
    if name == "chat":
        return ChatAdapter(use_json_adapter_fallback=spec.json_fallback)
    if name == "json":
        return JSONAdapter()
    return StructuredAdapter()

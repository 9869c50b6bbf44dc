"""The rehearsal's stand-ins for one run: the embedded server, the Ollama and Anthropic fronts over it, and the
environment that points the product's own backends at them (OLLAMA_BASE_URL, OPENAI_BASE_URL, ANTHROPIC_BASE_URL and
placeholder keys). OpenAI-protocol requests pass through to the embedded server's own endpoint. Which registry keys are rehearsed, and by what, is recorded (IA_REHEARSAL) in every sidecar."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from src.backends import backend_for
from src.backends.embedded.backend import EmbeddedBackend
from src.errors import UserError
from src.registry import Config
from src.registry.models import DEFAULT_EMBEDDED_MODEL
from src.results.provenance import REHEARSAL_ENV
from src.rehearsal.anthropic_front import AnthropicFront
from src.rehearsal.ollama_front import OllamaFront, ServedTag
from src.rehearsal.openai_front import OpenAIFront
from src.rehearsal.upstream import STAND_IN_CAP, Upstream

PLACEHOLDER_KEY = "rehearsal-placeholder-key"  # not a secret: the fronts only check that a key is sent
_PROVIDER_ENV = {"ollama": "OLLAMA_BASE_URL", "openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}
_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


def _size(params_b: float | None) -> str:
    if not params_b:
        return "unknown"
    return f"{params_b:.1f}B" if params_b >= 1 else f"{params_b * 1000:.0f}M"


@dataclass
class StandIns:
    """Started by `with StandIns(config) as s:`; `s.env` is what a command needs to run against them."""

    config: Config
    stand_in: str = DEFAULT_EMBEDDED_MODEL
    slots: int = 4  # parallel sequences of the one server answering for every key
    cap: int = STAND_IN_CAP  # most tokens the stand-in writes per reply, whatever the request allows
    env: dict[str, str] = field(default_factory=dict)
    rehearsed: dict[str, str] = field(default_factory=dict)  # registry key -> the protocol serving it

    def __post_init__(self) -> None:
        spec = self.config.model(self.stand_in)
        if spec.provider != "embedded":
            raise UserError(f"--stand-in must be an embedded model (python -m src.setup_models status), "
                            f"not {self.stand_in} ({spec.provider})")
        self._backend = backend_for(spec, self.config)
        assert isinstance(self._backend, EmbeddedBackend)
        problems = self._backend.problems()
        if problems:
            raise UserError(problems[0])
        self._fronts: list[Any] = []
        self._saved: dict[str, str | None] = {}

    def __enter__(self) -> StandIns:
        server = self._backend.server(self.slots)
        self.upstream = Upstream(f"{server.url}/v1", cap=self.cap)
        sha = self._backend.weights.sha256
        models = list(self.config.models.values())
        pinned = [m.key for m in models if m.provider in _PROVIDER_ENV and m.api_bases]
        tags = [ServedTag(m.model_id, thinking=m.supports_thinking, context_length=m.context_length,
                          parameter_size=_size(m.params_b), stand_in_sha256=sha)
                for m in models if m.provider == "ollama"]
        self.ollama = OllamaFront(self.upstream, tags)
        self.anthropic = AnthropicFront(self.upstream, [m.model_id for m in models if m.provider == "anthropic"])
        self.openai = OpenAIFront(self.upstream, [m.model_id for m in models if m.provider == "openai"])
        self._fronts = [self.ollama, self.anthropic, self.openai]
        urls = {"ollama": self.ollama.url, "openai": self.openai.url, "anthropic": self.anthropic.url}
        self.rehearsed = {m.key: m.provider for m in models if m.provider in urls and m.key not in pinned}
        self.env = {**{_PROVIDER_ENV[p]: u for p, u in urls.items()}, **{k: PLACEHOLDER_KEY for k in _KEY_ENV.values()},
                    REHEARSAL_ENV: json.dumps({"stand_in": self.stand_in, "stand_in_sha256": sha,
                                               "keys": self.rehearsed, "not_rehearsed": pinned})}
        self.pinned = pinned
        return self

    def apply(self) -> None:
        """Point this process's backends at the stand-ins (restored on exit)."""
        for k, v in self.env.items():
            self._saved.setdefault(k, os.environ.get(k))
            os.environ[k] = v

    def __exit__(self, *exc: Any) -> None:
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for front in self._fronts:
            front.close()
        self.upstream.close()

    def describe(self) -> str:
        spec = self.config.model(self.stand_in)
        keys = ", ".join(f"{k} ({p})" for k, p in self.rehearsed.items())
        return f"stand-in {self.stand_in} ({_size(spec.params_b)}, embedded) answers for: {keys}"

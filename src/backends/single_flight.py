"""Single flight for identical LM requests: while one request is in flight, an identical one (same model, messages
and settings) waits for it and is then answered by DSPy's response cache instead of computing the same reply again.

Why: the study scheduler runs units side by side, and some of them send the very same requests at the same moment —
an optimization's seeds bootstrap from the same unshuffled train set, each seed's first trial scores the unoptimized
program on the dev examples the dev-baseline unit is scoring. The response cache only serves a request after the
first one finished, so without this both reach the server. Only requests the cache may answer take part (a call
with the cache off, or --no-cache, never waits); the key may be coarser or finer than DSPy's cache key without harm:
a follower that finds no cached answer (the leader failed, or the keys differ) sends its own request, one
follower at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

# Where a request is sent and with which credentials does not change its answer (nor DSPy's cache key).
_NOT_IN_KEY = ("api_base", "api_key", "base_url")


def request_key(model: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """A digest of what determines a request's answer: the model, the prompt or messages, and its settings."""
    settings = {k: v for k, v in kwargs.items() if k not in _NOT_IN_KEY}
    text = json.dumps({"model": model, "args": args, "settings": settings}, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class SingleFlight:
    """Process-wide: at most one request per key in flight; the others wait for it to end, whatever its outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: dict[str, threading.Event] = {}
        self.waited = 0  # times a request found an identical one in flight and waited (for tests and profiling)

    def _enter(self, key: str) -> tuple[threading.Event, bool]:
        with self._lock:
            event = self._in_flight.get(key)
            if event is None:
                event = self._in_flight[key] = threading.Event()
                return event, True
            self.waited += 1
            return event, False

    def _leave(self, key: str, event: threading.Event) -> None:
        with self._lock:
            self._in_flight.pop(key, None)
        event.set()

    @contextlib.contextmanager
    def turn(self, key: str) -> Iterator[None]:
        """Run the body as the key's only request in flight: at once, or once the identical one in flight ended
        (then the cache answers it; after a failed one, the next waiting request is the one sent)."""
        event, leader = self._enter(key)
        while not leader:
            event.wait()
            event, leader = self._enter(key)
        try:
            yield
        finally:
            self._leave(key, event)

    @contextlib.asynccontextmanager
    async def aturn(self, key: str) -> AsyncIterator[None]:
        """turn() for coroutines: the wait runs in a thread, never blocking the event loop."""
        event, leader = self._enter(key)
        while not leader:
            await asyncio.to_thread(event.wait)
            event, leader = self._enter(key)
        try:
            yield
        finally:
            self._leave(key, event)


SINGLE_FLIGHT = SingleFlight()

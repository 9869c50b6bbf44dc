"""Endpoints: where a model's requests go, and how many may be in flight there at once.

An endpoint is a base URL serving one model (an Ollama host + tag, a vLLM replica, an API), or "the local CPU"
for every embedded model (one machine's cores, whichever llama.cpp server runs on them). Each endpoint has one
Budget per process, shared by every unit and every LM object that reaches it: two units on the same Ollama host
share its budget, units on OpenAI and on Ollama proceed side by side. A model may have several endpoints
(models.json `api_base` as a list): a Router spreads its requests over them, least requests in flight first, and
takes an endpoint that fails repeatedly out of the rotation for a while (a circuit breaker).

MeteredLM routes every request through its Router (src.backends.metering), so every call - an evaluation's, or
one made inside an optimizer - waits for its endpoint's budget.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

LOCAL_CPU = "local-cpu"
# Requests in flight per endpoint when neither models.json nor the study file says: today's per-provider
# concurrencies (an Ollama host serves OLLAMA_NUM_PARALLEL at once; APIs are latency-bound).
DEFAULT_BUDGET = {"embedded": 2, "ollama": 2, "openai": 8, "anthropic": 8, "openai_compatible": 4}
BREAKER_FAILURES = 3  # consecutive transport/server failures that take an endpoint out
BREAKER_COOLDOWN_S = 30.0  # how long it stays out before it is tried again
RECHECK_S = 0.5  # a waiting request looks again this often (a route whose breaker closed announces nothing)


def endpoint_id(url: str, model_id: str) -> str:
    """The name of an endpoint: its base URL and the model it serves (the Ray resource name derives from it)."""
    return f"{url.rstrip('/')}#{model_id}"


@dataclass
class Budget:
    """One endpoint's admission: at most `limit` requests in flight, counted across the whole process."""

    name: str
    limit: int
    in_flight: int = 0
    calls: int = 0
    failures: int = 0
    peak: int = 0
    explicit: bool = False  # set by models.json / the study file: never raised by a runner's --concurrency
    waiters: deque = field(default_factory=deque, repr=False, compare=False)  # _Waiter, first come first served

    def wake_one(self) -> None:
        """Wake the longest-waiting request that still waits for this budget (one slot, one waiter). Waking every
        waiter of the process on every release - hundreds of threads when a study runs many units - cost more
        CPU than the requests themselves on a small machine."""
        while self.waiters:
            w = self.waiters.popleft()
            if w.waiting:  # entries of a waiter already woken through another of its routes are dropped here
                w.waiting = False
                w.cond.notify()
                return


class _Waiter:
    """One request waiting for a slot on any of its router's budgets (registered on each of them)."""

    __slots__ = ("cond", "waiting")

    def __init__(self, lock: threading.Lock) -> None:
        self.cond = threading.Condition(lock)
        self.waiting = True


class EndpointRegistry:
    """The process's budgets, by endpoint name. One lock guards them all (every critical section is a few field
    updates); a request waiting for a slot waits on a condition of its own, woken by the release that frees one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._budgets: dict[str, Budget] = {}

    def budget(self, name: str, limit: int, *, explicit: bool = False) -> Budget:
        """The endpoint's budget, created on first use. An explicit limit (configuration) wins; otherwise the
        largest limit asked for (a runner's --concurrency may raise the provider default, never lower it)."""
        with self._lock:
            b = self._budgets.get(name)
            if b is None:
                b = self._budgets[name] = Budget(name, max(1, limit), explicit=explicit)
            elif explicit:
                b.limit, b.explicit = max(1, limit), True
            elif not b.explicit:
                b.limit = max(b.limit, limit)
            for _ in range(max(0, b.limit - b.in_flight)):  # a raised limit admits waiting requests at once
                b.wake_one()
            return b

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Per endpoint: limit, in flight, calls, failures, peak in flight (for progress views and tests)."""
        with self._lock:
            return {n: {"limit": b.limit, "in_flight": b.in_flight, "calls": b.calls, "failures": b.failures,
                        "peak": b.peak} for n, b in self._budgets.items()}

    def reset(self) -> None:
        """Forget every budget (tests and benchmarks that build several runs in one process)."""
        with self._lock:
            self._budgets.clear()


REGISTRY = EndpointRegistry()


@dataclass
class Route:
    """One way to reach a model: a base URL (None: the client's default) under an endpoint's budget."""

    url: str
    budget: Budget
    api_base: str | None = None  # given to the client per request when the model has several routes
    failures_in_row: int = 0
    out_until: float = 0.0


@dataclass
class Router:
    """Spreads one model's requests over its routes: least requests in flight (relative to each budget), skipping
    a route whose circuit is open; waits while every budget is full. Shared by every copy of the LM."""

    routes: list[Route]
    registry: EndpointRegistry = field(default=REGISTRY)
    served: Counter = field(default_factory=Counter)  # url -> requests sent there through this router

    def __post_init__(self) -> None:
        if not self.routes:
            raise ValueError("a Router needs at least one route")

    def __deepcopy__(self, memo: dict) -> Router:
        return self  # lm.copy() and deepcopies of programs keep the same budgets and counts

    def __reduce__(self):  # a pickled LM (a saved program, a Ray task) re-joins its process's budgets by name
        return (_rebuild_router, ([(r.url, r.budget.name, r.budget.limit, r.budget.explicit, r.api_base)
                                   for r in self.routes],))

    def _pick(self, now: float) -> Route | None:
        live = [r for r in self.routes if r.out_until <= now] or self.routes  # all out: try them anyway
        free = [r for r in live if r.budget.in_flight < r.budget.limit]
        if not free:
            return None
        return min(free, key=lambda r: (r.budget.in_flight / r.budget.limit, self.served[r.url]))

    def acquire(self) -> Route:
        """A slot on the least-busy live route, waiting (first come, first served) while every budget is full."""
        lock = self.registry._lock
        with lock:
            waited = False
            while True:
                chosen = self._pick(time.monotonic())
                if chosen is not None:
                    break
                waited = True
                waiter = _Waiter(lock)
                for r in self.routes:
                    r.budget.waiters.append(waiter)
                if not waiter.cond.wait(RECHECK_S) and waiter.waiting:
                    waiter.waiting = False
                    for r in self.routes:
                        r.budget.waiters.remove(waiter)
            chosen.budget.in_flight += 1
            chosen.budget.calls += 1
            chosen.budget.peak = max(chosen.budget.peak, chosen.budget.in_flight)
            self.served[chosen.url] += 1
            if waited:  # woken by one route's release, it may have taken another's free slot: pass that one on
                for r in self.routes:
                    if r.budget.in_flight < r.budget.limit:
                        r.budget.wake_one()
            return chosen

    def release(self, route: Route, exc: BaseException | None) -> None:
        """Give the slot back (to the longest-waiting request); a failure counts towards the circuit breaker."""
        if exc is not None:
            self._failed(route, exc)
        with self.registry._lock:
            route.budget.in_flight -= 1
            if exc is None:
                route.failures_in_row = 0
            route.budget.wake_one()

    @contextmanager
    def route(self) -> Iterator[Route]:
        """Hold a slot for one request and record its outcome."""
        chosen = self.acquire()
        try:
            yield chosen
        except BaseException as exc:
            self.release(chosen, exc)
            raise
        self.release(chosen, None)

    def _failed(self, route: Route, exc: BaseException) -> None:
        from src.backends.retry import is_transient

        if not is_transient(exc):
            return  # a refused request (bad key, bad prompt) says nothing about the endpoint's health
        with self.registry._lock:
            route.budget.failures += 1
            route.failures_in_row += 1
            if route.failures_in_row >= BREAKER_FAILURES and len(self.routes) > 1 and \
                    route.out_until <= time.monotonic():
                route.out_until = time.monotonic() + BREAKER_COOLDOWN_S
                print(f"note: endpoint {route.url} failed {route.failures_in_row} requests in a row; its requests go "
                      f"to the model's other endpoints for {BREAKER_COOLDOWN_S:.0f}s", file=sys.stderr, flush=True)

    def add_served(self, counts: dict[str, int]) -> None:
        """Count requests another process sent on this router's behalf (a Ray node evaluating a unit), in its
        served counts and its endpoints' call counts (what progress views show)."""
        with self.registry._lock:
            self.served.update(counts)
            for route in self.routes:
                route.budget.calls += counts.get(route.url, 0)

    def served_snapshot(self) -> dict[str, int]:
        with self.registry._lock:
            return dict(self.served)


def _rebuild_router(routes: list[tuple[str, str, int, bool, str | None]]) -> Router:
    return Router([Route(url, REGISTRY.budget(name, limit, explicit=explicit), api_base)
                   for url, name, limit, explicit, api_base in routes])


def make_router(urls: list[str], names: list[str], limit: int, explicit: bool) -> Router:
    """A router over `urls` (one budget name each); the URL is sent per request only when there are several."""
    several = len(urls) > 1
    return Router([Route(url, REGISTRY.budget(name, limit, explicit=explicit), url if several else None)
                   for url, name in zip(urls, names)])


def served_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Requests per endpoint URL between two snapshots of a router (a unit's share of them)."""
    return {u: n - before.get(u, 0) for u, n in after.items() if n - before.get(u, 0) > 0}


def budget_note(snapshot: dict[str, dict[str, Any]]) -> str:
    """One line per endpoint: calls and peak in flight against its budget."""
    return "\n".join(f"  {name}: {s['calls']} calls, peak {s['peak']}/{s['limit']} in flight"
                     + (f", {s['failures']} failed" if s["failures"] else "") for name, s in sorted(snapshot.items()))


def reachability_problems(model_key: str, urls: list[str], model_id: str, timeout_s: float = 5.0) -> list[str]:
    """Preflight of an OpenAI-protocol model served at several URLs: each must answer GET /models; a failing one
    is named (its requests would otherwise fail one by one under load)."""
    import httpx

    out = []
    for url in urls:
        try:
            r = httpx.get(f"{url.rstrip('/')}/models", timeout=timeout_s)
            if r.status_code >= 500 or r.status_code == 404:
                out.append(f"model {model_key}: endpoint {url} answers GET /models with HTTP {r.status_code}: check "
                           f"that it serves {model_id}, or remove it from api_base in models.json")
        except Exception as exc:  # noqa: BLE001 - refused, timed out, DNS: all mean unreachable
            out.append(f"model {model_key}: endpoint {url} is not reachable ({type(exc).__name__}): start it, or "
                       f"remove it from api_base in models.json")
    return out

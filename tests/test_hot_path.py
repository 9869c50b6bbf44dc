"""The per-request hot path's shortcuts keep their semantics: endpoint budgets wake exactly the waiters a released
slot can serve (never losing one: here no waiter ever looks again on its own), and the cached secret list equals a
fresh reading of the environment and the registered credentials after every change."""

from __future__ import annotations

import os
import random
import threading
import time

import pytest

from src.backends import endpoints
from src.backends.endpoints import EndpointRegistry, Route, Router
from src.results import provenance


def _routers(registry: EndpointRegistry, layout: list[list[tuple[str, int]]]) -> list[Router]:
    return [Router([Route(f"http://{name}", registry.budget(name, limit), f"http://{name}") for name, limit in routes],
                   registry=registry) for routes in layout]


@pytest.mark.parametrize("layout", [
    [[("a", 2)]] * 4,  # four units of one model share one endpoint's budget
    [[("a", 2), ("b", 1), ("c", 3)]] * 3,  # one model on three replicas, several units
    [[("a", 2), ("b", 2)], [("b", 2)], [("a", 2)]],  # routers overlapping on some budgets
])
def test_every_waiter_is_woken_by_a_release_alone(monkeypatch, layout):
    # A waiter that is never notified would sleep for the whole re-check interval: set to an hour, a lost wakeup
    # hangs a thread and the join below fails.
    monkeypatch.setattr(endpoints, "RECHECK_S", 3600.0)
    registry = EndpointRegistry()
    routers = _routers(registry, layout)
    limits = {name: limit for routes in layout for name, limit in routes}
    rng = random.Random(7)
    live: dict[str, int] = {n: 0 for n in limits}
    peak: dict[str, int] = {n: 0 for n in limits}
    guard = threading.Lock()
    done = []

    def client(router: Router, holds: list[float]) -> None:
        for hold in holds:
            with router.route() as route:
                name = route.budget.name
                with guard:
                    live[name] += 1
                    peak[name] = max(peak[name], live[name])
                time.sleep(hold)
                with guard:
                    live[name] -= 1
        done.append(1)

    threads = [threading.Thread(target=client, args=(routers[i % len(routers)],
                                                     [rng.uniform(0, 0.001) for _ in range(60)]), daemon=True)
               for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(done) == len(threads), "a request waited for a slot that was released without waking it"
    assert all(peak[n] <= limits[n] for n in limits)  # the budget is never exceeded
    snap = registry.snapshot()
    assert sum(s["calls"] for s in snap.values()) == 24 * 60 and all(s["in_flight"] == 0 for s in snap.values())
    assert all(not registry._budgets[n].waiters or not any(w.waiting for w in registry._budgets[n].waiters)
               for n in limits)


def test_a_slot_left_free_by_a_woken_waiter_is_passed_on(monkeypatch):
    # Replicas a and b are full. x (on both) and z (on a only) wait. a and b are released together: a's release
    # wakes x, b's finds only x (already woken). x takes b (it has sent more to a), so a is free and only z can
    # use it: x must wake z, since no further release of a will.
    monkeypatch.setattr(endpoints, "RECHECK_S", 3600.0)
    registry = EndpointRegistry()
    x, z, hold_b = _routers(registry, [[("a", 1), ("b", 1)], [("a", 1)], [("b", 1)]])
    x.served["http://a"] = 5
    held_a, held_b = z.acquire(), hold_b.acquire()
    got: dict[str, Route] = {}
    tx = threading.Thread(target=lambda: got.setdefault("x", x.acquire()), daemon=True)
    tx.start()
    while len(registry._budgets["b"].waiters) < 1:
        time.sleep(0.01)
    tz = threading.Thread(target=lambda: got.setdefault("z", z.acquire()), daemon=True)
    tz.start()
    while len(registry._budgets["a"].waiters) < 2:
        time.sleep(0.01)
    with registry._lock:  # both releases before either waiter runs
        for route in (held_a, held_b):
            route.budget.in_flight -= 1
            route.budget.wake_one()
    tx.join(timeout=10)
    tz.join(timeout=10)
    assert got["x"].budget.name == "b"
    assert "z" in got and got["z"].budget.name == "a", "the free slot on a was never offered to z"


def test_a_raised_limit_admits_waiting_requests(monkeypatch):
    monkeypatch.setattr(endpoints, "RECHECK_S", 3600.0)
    registry = EndpointRegistry()
    (router,) = _routers(registry, [[("a", 1)]])
    held = router.acquire()
    got = []
    waiters = [threading.Thread(target=lambda: got.append(router.acquire()), daemon=True) for _ in range(2)]
    for t in waiters:
        t.start()
    time.sleep(0.2)
    assert not got  # the budget is full
    registry.budget("a", 3, explicit=True)  # a configuration that allows three at once
    for t in waiters:
        t.join(timeout=10)
    assert len(got) == 2 and registry.snapshot()["a"]["in_flight"] == 3
    router.release(held, None)


def _reference_secrets() -> list[str]:
    """secret_values() as it was before the cache: read everything on every call."""
    env = {v for k, v in os.environ.items() if provenance._SECRET_ENV.search(k) and v
           and len(v) >= provenance._MIN_SECRET_LEN}
    return sorted(env | provenance._registered, key=len, reverse=True)


def test_cached_secret_list_follows_every_change(monkeypatch):
    monkeypatch.setattr(provenance, "_registered", set(provenance._registered))
    rng = random.Random(11)
    names = ["IA_TEST_API_KEY", "IA_TEST_TOKEN", "IA_TEST_PASSWORD", "IA_TEST_PLAIN", "ia_test_secret_x"]
    for name in names:
        monkeypatch.delenv(name, raising=False)
    for step in range(3000):
        action = rng.random()
        name = rng.choice(names)
        value = "".join(rng.choice("abcdefXYZ0123-_") for _ in range(rng.randint(3, 14)))
        if action < 0.4:
            monkeypatch.setenv(name, value)
        elif action < 0.6:
            monkeypatch.delenv(name, raising=False)
        elif action < 0.7:
            provenance.register_secret(value)
        # else: nothing changed, the cached list is what is read
        expected = _reference_secrets()
        assert sorted(provenance.secret_values()) == sorted(expected), step
        assert [len(v) for v in provenance.secret_values()] == [len(v) for v in expected]  # longest first
        text = f"x {value} y " + " ".join(expected)
        scrubbed = provenance.scrub(text)
        assert not any(s in scrubbed for s in expected)
        assert provenance.scrub_value({text: [text, (text,)]}) == {scrubbed: [scrubbed, [scrubbed]]}

"""Single flight: identical requests in flight at once reach the server once (the others are answered by the
response cache once it ends), and nothing else changes — distinct requests, uncached calls and a failed leader
each still send their own request (loopback OpenAI-protocol server)."""

from __future__ import annotations

import threading
import time
import uuid

from loopback import ScriptedOpenAI, fail, reply_text

from src.backends.metering import MeteredLM
from src.backends.single_flight import SINGLE_FLIGHT, request_key


def _slow(content: str = "the answer"):
    def behaviour(req, i):
        time.sleep(0.6)  # long enough for every thread to be waiting while the first request is in flight
        return reply_text(content)
    return behaviour


def _together(fn, n: int) -> list:
    out: list = [None] * n
    start = threading.Barrier(n)

    def run(i: int) -> None:
        start.wait()
        try:
            out[i] = fn()
        except Exception as exc:  # noqa: BLE001 - the test inspects failures too
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def _lm(server, cache: bool = True) -> MeteredLM:
    return MeteredLM("openai/scripted", api_base=server.url, api_key="sk-test", cache=cache, temperature=0.0,
                     max_tokens=50)


def test_identical_requests_in_flight_reach_the_server_once():
    messages = [{"role": "user", "content": f"q {uuid.uuid4()}"}]  # fresh: no earlier test's cache entry
    with ScriptedOpenAI(_slow()) as server:
        lms = [_lm(server) for _ in range(4)]  # separate LM objects, as units of the study scheduler have
        waited = SINGLE_FLIGHT.waited
        replies = _together(lambda: lms[threading.get_ident() % 4](messages=messages), 4)
        assert len(server.requests) == 1
        assert SINGLE_FLIGHT.waited - waited >= 3
    assert all(r == ["the answer"] for r in replies), replies
    metered = sum(lm.meter.snapshot()["input_tokens"] for lm in lms)
    assert metered == 10  # one request's usage: the followers' answers came from the cache and cost nothing


def test_distinct_or_uncached_requests_each_reach_the_server():
    with ScriptedOpenAI(_slow()) as server:
        lm = _lm(server)
        tag = uuid.uuid4()
        _together(lambda: lm(messages=[{"role": "user", "content": f"{tag} {threading.get_ident()}"}]), 3)
        assert len(server.requests) == 3
    with ScriptedOpenAI(_slow()) as server:
        uncached = _lm(server, cache=False)
        messages = [{"role": "user", "content": f"q {uuid.uuid4()}"}]
        start = time.monotonic()
        _together(lambda: uncached(messages=messages), 3)
        assert len(server.requests) == 3
        assert time.monotonic() - start < 1.5  # side by side, not one after another


def test_followers_of_a_failed_request_send_their_own():
    def behaviour(req, i):
        time.sleep(0.6)
        return fail(400, "bad request") if i == 0 else reply_text("fine")

    messages = [{"role": "user", "content": f"q {uuid.uuid4()}"}]
    with ScriptedOpenAI(behaviour) as server:
        lm = _lm(server)
        replies = _together(lambda: lm(messages=messages), 3)
        assert sum(isinstance(r, Exception) for r in replies) == 1
        assert [r for r in replies if not isinstance(r, Exception)][0] == ["fine"]
        assert len(server.requests) == 2  # one follower sends after the failure; the cache answers the last


def test_the_key_ignores_where_a_request_goes_and_nothing_else():
    base = request_key("m", (), {"messages": [{"role": "user", "content": "x"}], "temperature": 0.0})
    assert base == request_key("m", (), {"messages": [{"role": "user", "content": "x"}], "temperature": 0.0,
                                         "api_base": "http://a", "api_key": "k"})
    assert base != request_key("m", (), {"messages": [{"role": "user", "content": "x"}], "temperature": 0.7})
    assert base != request_key("m", (), {"messages": [{"role": "user", "content": "y"}], "temperature": 0.0})
    assert base != request_key("m2", (), {"messages": [{"role": "user", "content": "x"}], "temperature": 0.0})
    assert base != request_key("m", (), {"messages": [{"role": "user", "content": "x"}], "temperature": 0.0,
                                         "rollout_id": 1})

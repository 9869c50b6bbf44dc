"""The one retry policy: which LM failures are transient, how long to wait between attempts, how long a request may
take, how long one example may take in all, and how many retries each example needed.

Every LM call of every runner goes through it (MeteredLM applies it around each request), so no other layer
retries: LiteLLM and DSPy's own engines are configured for a single attempt, and the evaluation engine records
what the policy did (Record.retries) instead of retrying again.

Two bounds follow from it. The request timeout bounds the wait for the next byte of a reply, so a server that
accepts a connection and never answers fails the request; it cannot catch a server that trickles a byte at a time.
The example deadline (`example_deadline_s`) is the wall-clock bound the engine enforces on a whole example:
every call it may make, each with every attempt timing out, plus the longest waits between attempts.
"""

from __future__ import annotations

import random
from contextvars import ContextVar
from dataclasses import dataclass

import httpx
from dspy.utils.exceptions import is_retryable_lm_error

# Per-provider waits for one request, in seconds (the next byte of the reply). Local models on a CPU can take
# minutes for a long answer; hosted APIs answer or fail within a couple of minutes. Reasoning models think first.
DEFAULT_TIMEOUT_S = {"openai": 120.0, "anthropic": 120.0, "openai_compatible": 300.0, "ollama": 600.0,
                     "embedded": 600.0}
REASONING_TIMEOUT_FACTOR = 3.0


@dataclass(frozen=True)
class RetryPolicy:
    """How one model's requests are retried and bounded."""

    attempts: int = 3  # tries per request, the first included
    backoff_s: float = 1.0  # first wait; doubles per retry, with jitter
    max_backoff_s: float = 30.0
    timeout_s: float = 120.0  # longest wait for the next byte of a reply

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """Retry after failed attempt number `attempt` (0-based)?"""
        return attempt + 1 < self.attempts and is_transient(exc)

    def example_deadline_s(self, calls: int) -> float:
        """The longest an example making up to `calls` LM requests can take if every attempt of every request
        uses its whole timeout and every wait between attempts is the longest allowed (a server's retry-after hint
        is honoured up to max_backoff_s)."""
        per_call = self.attempts * self.timeout_s + (self.attempts - 1) * self.max_backoff_s
        return max(1, calls) * per_call

    def delay_s(self, exc: BaseException, attempt: int) -> float:
        hint = getattr(exc, "retry_after", None)
        if isinstance(hint, (int, float)) and not isinstance(hint, bool) and 0 <= hint <= self.max_backoff_s:
            return float(hint)  # the server said when
        # exponential with jitter, never longer than max_backoff_s (the example deadline counts on that)
        return min(self.max_backoff_s, self.backoff_s * (2 ** attempt) * (0.5 + random.random()))


def retry_policy_of(lm: object) -> RetryPolicy:
    """The policy an LM retries by (MeteredLM's own; the default for any other LM)."""
    policy = getattr(lm, "retry", None)
    return policy if isinstance(policy, RetryPolicy) else RetryPolicy()


def is_transient(exc: BaseException) -> bool:
    """DSPy's classification of LM errors (rate limit, timeout, server error, transport), plus raw transport
    failures that reach us unwrapped."""
    for e in (exc, exc.__cause__, exc.__context__):
        if e is None:
            continue
        if isinstance(e, Exception) and is_retryable_lm_error(e):
            return True
        if isinstance(e, (httpx.TransportError, ConnectionError, TimeoutError)):
            return True
    return False


def timeout_for(provider: str, override: float | None, reasoning: bool) -> float:
    """A model's request timeout: its models.json `request_timeout_s`, else its provider's default (longer for
    reasoning models)."""
    if override:
        return float(override)
    base = DEFAULT_TIMEOUT_S.get(provider, 300.0)
    return base * REASONING_TIMEOUT_FACTOR if reasoning else base


# The evaluation engine installs a counter per example; MeteredLM adds each retry it makes to it.
_retry_counter: ContextVar[list[int] | None] = ContextVar("ia_retry_counter", default=None)


class RetryCount:
    """Counts the retries made inside a `with` block (one example), whichever LM made them. `box` lets another
    thread read the count while the block runs (the engine, when an example overruns its deadline)."""

    def __init__(self, box: list[int] | None = None) -> None:
        self._box = box if box is not None else [0]

    def __enter__(self) -> RetryCount:
        self._token = _retry_counter.set(self._box)
        return self

    def __exit__(self, *exc: object) -> None:
        _retry_counter.reset(self._token)

    @property
    def retries(self) -> int:
        return self._box[0]


def note_retry() -> None:
    box = _retry_counter.get()
    if box is not None:
        box[0] += 1

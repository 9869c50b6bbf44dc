"""What went wrong with an LM request, in words a user can act on: an exception that survived the retry policy is
classified (rejected key, unreachable endpoint, timeout, server error ...) and phrased with the model's endpoint and
key variable - never the key itself.

The classification reads DSPy's public error types (dspy.utils.exceptions: LMAuthError, LMRateLimitError, ...), the
HTTP status they carry, and the standard-library causes underneath (ConnectionRefusedError, socket.gaierror,
TimeoutError), so it holds for every engine DSPy routes a request through.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import httpx
from dspy.utils.exceptions import (
    ContextWindowExceededError,
    LMAuthError,
    LMBillingError,
    LMConfigurationError,
    LMInvalidRequestError,
    LMProviderError,
    LMRateLimitError,
    LMServerError,
    LMTimeoutError,
    LMTransportError,
    LMUnsupportedModelError,
)

# The error text of an example that failed: "<cause> | <exception type>: <first line of its message>". The cause is
# what a unit that failed on every example reports (src.evaluation.unit); the rest is the evidence.
SEPARATOR = " | "


@dataclass(frozen=True)
class Endpoint:
    """Where a model's requests go and which variable holds its key (None: no key), for phrasing failures."""

    url: str
    key_env: str | None = None
    timeout_s: float | None = None


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def _status(chain: list[BaseException]) -> int | None:
    for e in chain:
        for attr in ("status", "status_code"):
            value = getattr(e, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
                return value
        response = getattr(e, "response", None)
        code = getattr(response, "status_code", None)
        if isinstance(code, int) and 100 <= code <= 599:
            return code
    return None


def classify(exc: BaseException) -> tuple[str, int | None]:
    """(kind, HTTP status or None). Kinds: auth, billing, rate_limit, not_found, context, bad_request, server,
    timeout, unreachable, bad_reply, configuration, other."""
    chain = _chain(exc)
    status = _status(chain)
    kinds = [
        (lambda e: isinstance(e, LMConfigurationError), "configuration"),
        (lambda e: isinstance(e, LMAuthError), "auth"),
        (lambda e: isinstance(e, LMBillingError), "billing"),
        (lambda e: isinstance(e, LMRateLimitError), "rate_limit"),
        (lambda e: isinstance(e, ContextWindowExceededError), "context"),
        (lambda e: isinstance(e, LMUnsupportedModelError), "not_found"),
        (lambda e: isinstance(e, LMInvalidRequestError), "bad_request"),
        (lambda e: isinstance(e, LMServerError), "server"),
        (lambda e: isinstance(e, (LMTimeoutError, TimeoutError, httpx.TimeoutException)), "timeout"),
        (lambda e: isinstance(e, (ConnectionError, socket.gaierror, httpx.ConnectError)), "unreachable"),
    ]
    for test, kind in kinds:
        if any(test(e) for e in chain):
            return kind, status
    by_status = {401: "auth", 403: "auth", 402: "billing", 404: "not_found", 408: "timeout", 429: "rate_limit"}
    if status in by_status:
        return by_status[status], status
    if status is not None and status >= 500:
        return "server", status
    if status is not None and status >= 400:
        return "bad_request", status
    if any(isinstance(e, LMTransportError) for e in chain):
        return "unreachable", status
    if any(isinstance(e, LMProviderError) for e in chain):
        return "bad_reply", status
    return "other", status


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _connect_reason(exc: BaseException) -> str:
    for e in _chain(exc):
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, socket.gaierror):
            return "host name not resolved"
        if isinstance(e, ConnectionResetError):
            return "connection reset"
    return "connection failed"


def explain(exc: BaseException, endpoint: Endpoint | None) -> str:
    """One line naming the cause of a failed request, with the endpoint and key variable (never the key)."""
    kind, status = classify(exc)
    url = endpoint.url if endpoint else "the endpoint"
    key_env = endpoint.key_env if endpoint else None
    code = f" ({status})" if status else ""
    if kind == "auth":
        if key_env:
            return f"the server rejected {key_env}{code or ' (401)'}"
        return f"{url} rejected the request as unauthorized{code}: set api_key_env for this model in models.json"
    if kind == "billing":
        return f"{url} refused the request for billing or quota{code}" + (f": check the account of {key_env}"
                                                                          if key_env else "")
    if kind == "rate_limit":
        return f"rate limited by {url}{code or ' (429)'}: lower --concurrency or wait"
    if kind == "context":
        return "the prompt exceeds the model's context window"
    if kind == "not_found":
        return f"{url} does not serve this model{code}: check model_id (models.json) or pull the model"
    if kind == "bad_request":
        return f"{url} refused the request as invalid{code}: {_first_line(exc)}"
    if kind == "server":
        return f"server error{code} from {url}"
    if kind == "timeout":
        wait = f" within {endpoint.timeout_s:g} s" if endpoint and endpoint.timeout_s else ""
        return f"no reply from {url}{wait} (the request timeout; raise request_timeout_s in models.json)"
    if kind == "unreachable":
        return f"cannot reach {url} ({_connect_reason(exc)})"
    if kind == "bad_reply":
        return f"unreadable reply from {url}"
    if kind == "configuration":
        return f"the LM client refused the model's settings: {_first_line(exc)}"
    return f"{type(exc).__name__}: {_first_line(exc)}"


def error_text(exc: BaseException, endpoint: Endpoint | None) -> str:
    """An example's error column: the cause, then the exception that carried it."""
    return f"{explain(exc, endpoint)}{SEPARATOR}{type(exc).__name__}: {_first_line(exc)}"


def cause_of(error: str) -> str:
    """The cause part of an error column (older results, without a cause, give their whole text)."""
    return error.split(SEPARATOR, 1)[0].strip()

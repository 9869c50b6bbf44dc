"""The sandbox's judge: the program runs in one process (the *worker*), its tests in another (the *checker*), and
only plain data crosses between them. Standard library only: child.py loads this file into the sandbox before
any privilege is dropped (it cannot import the project package).

Why two processes: the program's code can reach anything in its own interpreter (exit routes, harness globals,
builtins, the garbage collector), so nothing decided in that interpreter can be trusted. The checker never runs
a line of the program: it executes the dataset's tests with the program's functions stood in for by `Remote`
proxies. A call is sent to the worker as data, the worker calls the real function, and the result comes back as
data that the checker rebuilds from JSON into exact built-in types (int, str, list, tuple, dict, set, ...). So a
comparison in a test always runs the built-in `==` of values the checker made itself: an object whose `__eq__`
is always true, a lying `__bool__`, a patched `isinstance` or a swallowed AssertionError never reaches it.
Anything that is not plain data (an instance of the program's class, a generator, a function) stays in the
worker and is seen by the checker as an opaque `Remote` handle: identity equality only, no truth value; calls,
attributes, iteration, len and indexing on it are forwarded and their results come back as data again.

Wire format: frames of a 4-byte big-endian length and a JSON body. Values: JSON null/bool/int/float/str and
arrays (lists) as themselves; everything else tagged, {"t": "tuple" | "set" | "frozenset" | "dict" | "bytes" |
"bytearray" | "complex" | "range" | "h", "v": ...}.
"""

from __future__ import annotations

import builtins
import json
import os
import struct
import sys

MAX_FRAME = 64 * 2 ** 20
SETUP_ERROR = "SandboxSetupError"  # the worker's first answer when the sandbox, not the program, failed
MAX_DEPTH = 200
_BASE_TYPES = (bool, int, float, complex, str, bytes, bytearray, tuple, list, dict, set, frozenset, range)


class ProtocolError(Exception):
    """The other side sent something that is not a well-formed frame or value."""


class ProgramGone(Exception):
    """The program's process ended (or closed its end) before answering."""


# ---- frames -----------------------------------------------------------------------------------------------------

def write_frame(fd: int, obj: object) -> None:
    body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
    view = memoryview(struct.pack(">I", len(body)) + body)
    while view:
        view = view[os.write(fd, view):]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> object:
    """The next frame's JSON value; ProgramGone at a clean end of stream."""
    head = _read_exact(fd, 4)
    if head is None:
        raise ProgramGone("the program's process ended before answering")
    (size,) = struct.unpack(">I", head)
    if size > MAX_FRAME:
        raise ProtocolError(f"frame of {size} bytes is over the {MAX_FRAME}-byte limit")
    body = _read_exact(fd, size)
    if body is None:
        raise ProgramGone("the program's process ended in the middle of an answer")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"malformed frame: {exc}") from None


# ---- values -----------------------------------------------------------------------------------------------------

def encode(value: object, other, depth: int = 0) -> object:
    """`value` as wire data. Exact built-ins and their subclasses become plain data (a subclass is read through
    its base type's own methods, never its overrides); anything else goes to `other(value)`."""
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply to send")
    t = type(value)
    if value is None or t is bool or t is int or t is float or t is str:
        return value
    if t is list:
        return [encode(v, other, depth + 1) for v in value]
    base = next((b for b in _BASE_TYPES if issubclass(t, b)), None)
    if base is None:
        if t is type or t is type(len):  # a builtin class or function, by name (MBPP 533 passes `int`)
            name = type.__dict__["__name__"].__get__(value) if t is type else value.__name__
            if vars(builtins).get(name) is value:
                return {"t": "builtin", "v": name}
        return other(value)
    if base is bool or base is int:
        return int.__int__(value)  # exact int even for an IntEnum or an int subclass
    if base is float:
        return float.__float__(value)
    if base is str:
        return str.__str__(value)
    if base is complex:
        return {"t": "complex", "v": [complex.real.__get__(value), complex.imag.__get__(value)]}
    if base is bytes or base is bytearray:
        return {"t": base.__name__, "v": bytes(memoryview(value)).hex()}
    if base is range:
        return {"t": "range", "v": [range.start.__get__(value), range.stop.__get__(value),
                                   range.step.__get__(value)]}
    if base is dict:
        return {"t": "dict", "v": [[encode(k, other, depth + 1), encode(v, other, depth + 1)]
                                  for k, v in dict.items(value)]}
    items = {list: list.__iter__, tuple: tuple.__iter__, set: set.__iter__, frozenset: frozenset.__iter__}[base]
    data = [encode(v, other, depth + 1) for v in items(value)]
    return data if base is list else {"t": base.__name__, "v": data}


def decode(data: object, on_handle, depth: int = 0, *, any_builtin: bool = False) -> object:
    """Wire data as exact built-in values (handles through `on_handle(id, type_name)`); ProtocolError otherwise.
    A builtin named on the wire is rebuilt only if it is a class (the checker never receives a builtin function
    it might call), unless `any_builtin` (the worker's side, which trusts nothing anyway)."""
    if depth > MAX_DEPTH:
        raise ProtocolError("value nested too deeply")
    t = type(data)
    if data is None or t is bool or t is int or t is float or t is str:
        return data
    if t is list:
        return [decode(v, on_handle, depth + 1, any_builtin=any_builtin) for v in data]
    if t is not dict or type(data.get("t")) is not str:
        raise ProtocolError(f"unexpected {t.__name__} on the wire")
    tag, v = data["t"], data.get("v")
    try:
        if tag in ("tuple", "set", "frozenset"):
            items = [decode(x, on_handle, depth + 1, any_builtin=any_builtin) for x in _list(v)]
            return {"tuple": tuple, "set": set, "frozenset": frozenset}[tag](items)
        if tag == "dict":
            out = {}
            for pair in _list(v):
                if type(pair) is not list or len(pair) != 2:
                    raise ProtocolError("a dict item is not a [key, value] pair")
                out[decode(pair[0], on_handle, depth + 1, any_builtin=any_builtin)] = decode(pair[1], on_handle, depth + 1, any_builtin=any_builtin)
            return out
        if tag in ("bytes", "bytearray") and type(v) is str:
            return (bytes if tag == "bytes" else bytearray).fromhex(v)
        if tag == "complex" and type(v) is list and len(v) == 2 and all(type(x) in (int, float) for x in v):
            return complex(float(v[0]), float(v[1]))
        if tag == "range" and type(v) is list and len(v) == 3 and all(type(x) is int for x in v):
            return range(*v)
        if tag == "h" and type(v) is int and type(data.get("n", "")) is str:
            return on_handle(v, data.get("n", "object"))
        if tag == "builtin" and type(v) is str and (obj := vars(builtins).get(v)) is not None \
                and (any_builtin or type(obj) is type):
            return obj
    except TypeError as exc:  # e.g. an unhashable value as a set element or dict key
        raise ProtocolError(f"bad {tag}: {exc}") from None
    raise ProtocolError(f"unknown or malformed value tag {tag!r}")


def _list(v: object) -> list:
    if type(v) is not list:
        raise ProtocolError("expected a list")
    return v


# ---- the worker: runs the program, answers requests -------------------------------------------------------------

class _Handles:
    """Objects the worker has shown the checker, by number (kept alive; keyed by identity, never by __hash__)."""

    def __init__(self) -> None:
        self.objects: dict[int, object] = {}
        self.numbers: dict[int, int] = {}

    def number(self, obj: object) -> dict:
        key = id(obj)
        if key not in self.numbers:
            self.numbers[key] = len(self.objects) + 1
            self.objects[self.numbers[key]] = obj
        return {"t": "h", "v": self.numbers[key], "n": str(type.__dict__["__name__"].__get__(type(obj)))[:80]}

    def get(self, number: int, _name: str) -> object:
        if number not in self.objects:
            raise ProtocolError(f"unknown handle {number}")
        return self.objects[number]


def _error(exc: BaseException) -> dict:
    try:
        message = str(exc)[:500]
    except BaseException:  # noqa: BLE001 - a hostile __str__
        message = "<unprintable>"
    return {"err": [type.__dict__["__name__"].__get__(type(exc))[:80], message]}


def run_worker(code: str, namespace: dict, requests: int, replies: int, flush) -> None:
    """Execute the program, report whether it loaded, then answer the checker's requests until it hangs up."""
    try:
        exec(compile(code, "<program>", "exec", dont_inherit=True), namespace)  # noqa: S102 - the point
        loaded: dict = {"ok": None}
    except BaseException as exc:  # noqa: BLE001 - SystemExit and friends included: the program did not finish
        if isinstance(exc, SystemExit):
            loaded = {"err": ["SystemExit", f"SystemExit({exc.code!r}) before the tests finished"]}
        else:
            loaded = _error(exc)
        import traceback  # only on failure: importing it costs more than a passing run's whole check

        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next, limit=8, file=sys.stderr)
    flush()
    write_frame(replies, loaded)
    handles = _Handles()
    while True:
        try:
            msg = read_frame(requests)
        except ProgramGone:
            return
        try:
            reply = {"ok": encode(_perform(msg, namespace, handles), handles.number)}
        except BaseException as exc:  # noqa: BLE001 - the program's exceptions become data for the checker
            reply = _error(exc)
        flush()
        write_frame(replies, reply)


def _perform(msg: object, namespace: dict, handles: _Handles) -> object:
    if type(msg) is not dict:
        raise ProtocolError("a request is not an object")
    op = msg.get("op")
    if op == "global":
        name = msg.get("name")
        if name not in namespace:
            raise NameError(f"name {name!r} is not defined by the program")
        return namespace[name]
    target = handles.get(msg.get("h"), "")
    if op == "call":
        args = decode(msg.get("a", []), handles.get, any_builtin=True)
        kwargs = decode({"t": "dict", "v": msg.get("k", [])}, handles.get, any_builtin=True)
        return target(*args, **kwargs)
    if op == "getattr":
        return getattr(target, msg.get("n"))
    if op == "setattr":
        setattr(target, msg.get("n"), decode(msg.get("v"), handles.get, any_builtin=True))
        return None
    if op == "iter":
        return iter(target)
    if op == "next":
        return next(target)
    if op == "len":
        return len(target)
    if op == "getitem":
        return target[decode(msg.get("k"), handles.get, any_builtin=True)]
    raise ProtocolError(f"unknown operation {op!r}")


# ---- the checker: runs the tests against Remote proxies ---------------------------------------------------------

# A program's exception is re-raised in the checker as the built-in exception of the same name (so a test that
# expects a ValueError still sees one); others, and BaseException-only ones, as ProgramError.
_EXCEPTIONS = {name: cls for name, cls in vars(builtins).items()
               if isinstance(cls, type) and issubclass(cls, Exception) and cls not in (StopIteration,
                                                                                       StopAsyncIteration)}


class ProgramError(RuntimeError):
    """The program raised an exception that has no built-in counterpart."""


class Link:
    """The checker's end of the wire: one request at a time, answers rebuilt as exact built-in values."""

    def __init__(self, requests: int, replies: int) -> None:
        self.requests, self.replies = requests, replies
        self.remotes: dict[int, Remote] = {}
        self.calls = 0

    def loaded(self) -> str | None:
        """None once the program has run to its end; else why it did not (its exception, as 'Type: message')."""
        msg = read_frame(self.replies)
        if msg == {"ok": None}:
            return None
        err = msg.get("err") if type(msg) is dict else None
        if type(err) is not list or len(err) != 2 or not all(type(x) is str for x in err):
            raise ProtocolError("malformed first answer")
        return f"{err[0][:80]}: {err[1][:300]}" if err[1] else err[0][:80]

    def request(self, op: str, **fields: object) -> object:
        self.calls += 1
        write_frame(self.requests, {"op": op, **fields})
        return self._answer()

    def _answer(self) -> object:
        msg = read_frame(self.replies)
        if type(msg) is not dict or len(msg) != 1:
            raise ProtocolError("an answer is not {ok: ...} or {err: ...}")
        if "ok" in msg:
            return decode(msg["ok"], self.remote)
        err = msg.get("err")
        if type(err) is not list or len(err) != 2 or not all(type(x) is str for x in err):
            raise ProtocolError("malformed error answer")
        name, text = err[0][:80], err[1][:500]
        if name == "StopIteration":
            raise _RemoteStop()
        cls = _EXCEPTIONS.get(name)
        try:
            exc = cls(text) if cls is not None else ProgramError(f"{name}: {text}")
        except TypeError:  # built-ins whose constructor wants more than a message
            exc = ProgramError(f"{name}: {text}")
        raise exc

    def remote(self, number: int, type_name: str) -> Remote:
        if number not in self.remotes:
            self.remotes[number] = Remote(self, number, type_name)
        return self.remotes[number]

    def send(self, value: object) -> object:
        return encode(value, _handle_only)


class _RemoteStop(Exception):
    pass


def _handle_only(value: object) -> dict:
    if type(value) is Remote:
        return {"t": "h", "v": object.__getattribute__(value, "_number")}
    raise TypeError(f"a {type(value).__name__} cannot be passed to the program (only plain data and the "
                    f"program's own objects)")


class Remote:
    """An object that lives in the program's process. Equality and hashing are by identity and it has no truth
    value: the checker never lets the program decide a comparison."""

    __slots__ = ("_link", "_number", "_type")

    def __init__(self, link: Link, number: int, type_name: str) -> None:
        object.__setattr__(self, "_link", link)
        object.__setattr__(self, "_number", number)
        object.__setattr__(self, "_type", type_name)

    def _do(self, op: str, **fields: object) -> object:
        return object.__getattribute__(self, "_link").request(op, h=object.__getattribute__(self, "_number"),
                                                              **fields)

    def __call__(self, *args: object, **kwargs: object) -> object:
        link = object.__getattribute__(self, "_link")
        return self._do("call", a=link.send(list(args)), k=[[k, link.send(v)] for k, v in kwargs.items()])

    def __getattr__(self, name: str) -> object:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._do("getattr", n=name)

    def __setattr__(self, name: str, value: object) -> None:
        self._do("setattr", n=name, v=object.__getattribute__(self, "_link").send(value))

    def __iter__(self):
        iterator = self._do("iter")
        while True:
            try:
                yield iterator._do("next") if type(iterator) is Remote else _not_an_iterator()
            except _RemoteStop:
                return

    def __len__(self) -> int:
        n = self._do("len")
        if type(n) is not int or n < 0:
            raise TypeError("len() of a program object did not give a non-negative int")
        return n

    def __getitem__(self, key: object) -> object:
        return self._do("getitem", k=object.__getattribute__(self, "_link").send(key))

    def __bool__(self) -> bool:
        raise TypeError(f"a {object.__getattribute__(self, '_type')} object from the program has no trusted "
                        f"truth value")

    def __repr__(self) -> str:
        return f"<program {object.__getattribute__(self, '_type')} object>"


def _not_an_iterator():
    raise TypeError("iter() of a program object did not give an iterator")


def run_checker(check: dict | None, link: Link) -> tuple[str, str]:
    """(status, reason): "passed" only if the program loaded and every test ran to the end without an exception."""
    sys.set_int_max_str_digits(0)  # values are rebuilt from JSON text; big ints are legitimate answers
    try:
        failure = link.loaded()
    except ProgramGone as exc:
        return "failed", str(exc)
    except ProtocolError as exc:
        return "failed", f"the program's process broke the protocol: {exc}"
    if failure is not None:
        return ("error" if failure.startswith(SETUP_ERROR) else "failed"), failure
    if check is None:
        return "passed", ""
    ns: dict = {"__name__": "__check__", "__builtins__": builtins}
    sources = {"<context>": check.get("context") or "", "<tests>": check.get("tests") or ""}
    try:
        for module in check.get("modules") or ():
            ns[module] = __import__(module)
        exec(compile(sources["<context>"], "<context>", "exec", dont_inherit=True, optimize=0), ns)  # noqa: S102
        for name in check.get("bind") or ():
            try:
                ns[name] = link.request("global", name=name)
            except NameError:
                pass  # the tests will raise NameError where they use it, as they would in one module
        exec(compile(sources["<tests>"], "<tests>", "exec", dont_inherit=True, optimize=0), ns)  # noqa: S102
        if check.get("call"):
            ns[check["call"]](link.request("global", name=check["candidate"]))
    except ProgramGone as exc:
        return "failed", str(exc)
    except ProtocolError as exc:
        return "failed", f"the program's process broke the protocol: {exc}"
    except BaseException as exc:  # noqa: BLE001 - a failing test, in whatever form
        return "failed", _describe_failure(exc, sources)
    return "passed", ""


def _describe_failure(exc: BaseException, sources: dict[str, str]) -> str:
    """'AssertionError: msg [tests line 12: assert candidate(3) == 4]', and the traceback on stderr."""
    where = ""
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name in sources:
            lines = sources[name].splitlines()
            line = lines[tb.tb_lineno - 1].strip() if 0 < tb.tb_lineno <= len(lines) else ""
            where = f" [{name.strip('<>')} line {tb.tb_lineno}: {line[:160]}]"
        tb = tb.tb_next
    try:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, limit=-6, file=sys.stderr)
    except BaseException:  # noqa: BLE001
        pass
    text = str(exc)
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:300] + where

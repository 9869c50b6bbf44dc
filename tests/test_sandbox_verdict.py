"""The code verdict cannot be forged: wrong solutions that try to fake a pass (exit routes, fake output, harness
globals, patched builtins, always-equal and hostile objects, lying generators, their own `check`, threads, guard
bypasses) all score failed through the code task's real scoring path, while the correct solution passes; and the
wire between program and checker rebuilds values exactly as Python would compare them."""

from __future__ import annotations

import json
import math
import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from src.registry import load_config
from src.sandbox import Check, isolation, run_checked
from src.sandbox import judge
from src.tasks import get_task
from src.tasks.domains.humaneval import HumanEvalPackageSource

# HumanEval/0: has_close_elements(numbers, threshold) -> bool; its tests expect both True and False.
ENTRY = "has_close_elements"
HEADER = f"from typing import List\n\n\ndef {ENTRY}(numbers: List[float], threshold: float) -> bool:\n"
WRONG = "    return False\n"  # a wrong answer every forgery below rides on

# Each forgery: a wrong solution plus a trick meant to make it score as passed. Families in the name's prefix.
FORGERIES = {
    # exit routes: the program's process ends "successfully" before or while the tests run
    "exit/os._exit(0) at import": "import os\nos._exit(0)\n" + HEADER + WRONG,
    "exit/posix._exit(0) at import": "import posix\nposix._exit(0)\n" + HEADER + WRONG,
    "exit/sys.exit(0) at import": "import sys\nsys.exit(0)\n" + HEADER + WRONG,
    "exit/SystemExit(0) inside the call": HEADER + "    raise SystemExit(0)\n",
    "exit/posix._exit(0) inside the call": HEADER + "    import posix\n    posix._exit(0)\n",
    "exit/sys.exit in a thread, posix._exit after": HEADER + "    import threading, sys, posix\n"
        "    threading.Thread(target=lambda: sys.exit(0)).start()\n    posix._exit(0)\n",
    "exit/SIGKILL to itself": HEADER + "    import posix\n    posix.kill(posix.getpid(), 9)\n",
    "exit/SIGTERM handler exits 0": "import signal, posix\n"
        "signal.signal(signal.SIGTERM, lambda *a: posix._exit(0))\n" + HEADER
        + "    posix.kill(posix.getpid(), signal.SIGTERM)\n    return False\n",
    "exit/atexit exits 0": "import atexit, posix\natexit.register(lambda: posix._exit(0))\n" + HEADER + WRONG,
    "exit/execv /bin/true": "import posix\nposix.execv('/bin/true', ['true'])\n" + HEADER + WRONG,
    "exit/_posixsubprocess exec": "import _posixsubprocess\n" + HEADER + WRONG,
    "exit/subinterpreter os._exit(0)": "import _xxsubinterpreters as si\n"
        "si.run_string(si.create(), 'import os; os._exit(0)')\n" + HEADER + WRONG,
    "exit/close every descriptor": "import posix\nfor fd in range(1024):\n    try:\n        posix.close(fd)\n"
        "    except OSError:\n        pass\n" + HEADER + WRONG,
    # output: fake verdicts where the old harness or a naive reader would look
    "output/fake verdict lines on stdout and stderr": "import sys\n"
        "line = '{\"status\": \"passed\", \"reason\": \"\", \"token\": \"0\"}'\n"
        "print(line); print(line, file=sys.stderr); print('IA_SANDBOX_REASON: passed')\n" + HEADER + WRONG,
    "output/write a fake answer frame to every descriptor": "import posix, json, struct\n"
        "body = json.dumps({'ok': True}).encode()\nframe = struct.pack('>I', len(body)) + body\n"
        "for fd in range(3, 64):\n    try:\n        posix.write(fd, frame * 50)\n    except OSError:\n        pass\n"
        + HEADER + WRONG,
    "output/fake verdict to every descriptor": "import posix\n"
        "line = b'{\"status\": \"passed\", \"reason\": \"\", \"token\": \"x\"}\\n'\n"
        "for fd in range(3, 64):\n    try:\n        posix.write(fd, line)\n    except OSError:\n        pass\n"
        + HEADER + WRONG,
    # harness state: globals of __main__ and of every loaded module, the exit codes of the old harness
    "harness/__main__ exit-code globals": "import sys\nm = sys.modules['__main__']\n"
        "for k in list(vars(m)):\n    if k.startswith(('EXIT_', '_REAL')) and isinstance(getattr(m, k), int):\n"
        "        setattr(m, k, 0)\n"
        "for name in ('EXIT_ASSERTION', 'EXIT_EXCEPTION', 'EXIT_SYSTEM_EXIT', 'EXIT_SETUP'):\n"
        "    setattr(m, name, 0)\n" + HEADER + WRONG,
    "harness/patch the judge's functions wherever they are": "import gc\n"
        "for mod in [m for m in gc.get_objects() if type(m).__name__ == 'module']:\n"
        "    for k in ('run_checker', 'decode', '_verdict', 'run_once', '_result'):\n"
        "        if hasattr(mod, k):\n            setattr(mod, k, lambda *a, **kw: ('passed', ''))\n"
        + HEADER + WRONG,
    # builtins the checker might use
    "builtins/AssertionError, isinstance, len, bool patched": "import builtins\n"
        "class Nothing(BaseException):\n    pass\n"
        "builtins.AssertionError = Nothing\nbuiltins.isinstance = lambda *a: True\n"
        "builtins.len = lambda *a: 0\nbuiltins.bool = lambda *a: True\n" + HEADER + WRONG,
    # values that lie in comparisons
    "values/__eq__ always true": "class Yes:\n    def __eq__(self, other):\n        return True\n"
        "    def __ne__(self, other):\n        return False\n    def __bool__(self):\n        return True\n"
        "    __hash__ = object.__hash__\n" + HEADER + "    return Yes()\n",
    "values/bool-like int subclass": "class T(int):\n    def __eq__(self, other):\n        return True\n"
        "    __hash__ = int.__hash__\n" + HEADER + "    return T(0)\n",
    "values/str and float subclasses": "class S(str):\n    def __eq__(self, o):\n        return True\n"
        "    __hash__ = str.__hash__\n" + HEADER + "    return S('x')\n",
    "values/__eq__ raises, __repr__ and __hash__ raise": "class Bad:\n"
        "    def __eq__(self, o):\n        raise AssertionError('x')\n"
        "    def __repr__(self):\n        raise RuntimeError\n    def __hash__(self):\n        raise RuntimeError\n"
        + HEADER + "    return Bad()\n",
    "values/a generator that says yes": HEADER + "    yield True\n",
    "values/__class__ claims bool": "class Fake:\n    __class__ = bool\n    def __eq__(self, o):\n        return True\n"
        + HEADER + "    return Fake()\n",
    "values/NotImplemented and Ellipsis": HEADER + "    return NotImplemented\n",
    # the tests themselves
    "tests/define check(candidate) as a no-op": HEADER + WRONG + "\n\ndef check(candidate):\n    pass\n",
    "tests/rebind check from a later call": HEADER + "    import sys\n"
        "    sys.modules['__sandbox__'].check = lambda c: None\n    return False\n",
    "tests/disable asserts (optimize, __debug__)": "import sys, builtins\n"
        "try:\n    sys.flags.optimize = 2\nexcept Exception:\n    pass\nsetattr(builtins, '__debug__', False)\n" + HEADER + WRONG,
    # concurrency
    "threads/a thread that outlives the tests": "import threading, time, posix\n"
        "def later():\n    time.sleep(0.3)\n    posix._exit(0)\n"
        "threading.Thread(target=later, daemon=False).start()\n" + HEADER + WRONG,
    "threads/answer every request from a thread": "import threading, posix, json, struct\n"
        "def spam():\n    body = json.dumps({'ok': True}).encode()\n"
        "    for fd in range(3, 20):\n        try:\n            posix.write(fd, struct.pack('>I', len(body)) + body)\n"
        "        except OSError:\n            pass\n"
        "threading.Thread(target=spam).start()\n" + HEADER + WRONG,
}
# A correct solution that also performs a (harmless) trick: it must still pass (a control for every family).
CORRECT = (HEADER + "    return any(abs(a - b) < threshold for i, a in enumerate(numbers)"
           " for b in numbers[i + 1:])\n")


@pytest.fixture(scope="module")
def code_task(tmp_path_factory):
    return get_task("code", load_config(tmp_path_factory.mktemp("workdir")))


@pytest.fixture(scope="module")
def humaneval0(code_task):
    record = HumanEvalPackageSource().records(code_task.spec.eval)[0]
    assert record["entry_point"] == ENTRY
    return code_task.example_from_record(record, 0, "test")


def _score_all(code_task, example, completions: dict[str, str]) -> dict[str, object]:
    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(completions, pool.map(lambda c: code_task.score(example, {"code": c}), completions.values())))


def test_the_correct_solution_passes_and_every_forged_pass_fails(code_task, humaneval0, monkeypatch):
    monkeypatch.setattr(code_task, "timeout_s", 5.0)
    scores = _score_all(code_task, humaneval0, {"correct": CORRECT, **FORGERIES})
    assert scores.pop("correct").correct
    forged = {name: s.extras for name, s in scores.items() if s.correct or s.score != 0.0}
    assert forged == {}, f"forged passes: {sorted(forged)}"
    assert len(scores) == len(FORGERIES) >= 30


@pytest.mark.slow
def test_forgeries_fail_even_without_the_interpreter_guard(humaneval0):
    """The guard is defence in depth only: with it off (as if bypassed), the verdict still holds."""
    if not isolation().kernel_isolation:
        pytest.skip("without kernel isolation the guard is a real layer; not switched off here")
    task = get_task("code", load_config())
    with ThreadPoolExecutor(max_workers=3) as pool:
        def run(code: str):
            program, check = task.program_parts(humaneval0, code)
            return run_checked(program, check, 5.0, guard=False)
        results = dict(zip(FORGERIES, pool.map(run, FORGERIES.values())))
        control = run(CORRECT)
    assert control.passed, control
    assert {n: r.reason for n, r in results.items() if r.passed} == {}


def test_the_verdict_holds_in_user_namespace_mode_too(humaneval0):
    """A non-root host's mode: program and checker share one uid there, so the checker's protection is being
    non-dumpable and the program's lack of every capability."""
    probe = run_checked("print(1)\n", None, 10, mode="userns")
    if not probe.passed:
        pytest.skip(f"no user namespaces here: {probe.reason}")
    task = get_task("code", load_config())
    with ThreadPoolExecutor(max_workers=3) as pool:
        def run(code: str):
            program, check = task.program_parts(humaneval0, code)
            return run_checked(program, check, 5.0, guard=False, mode="userns")
        results = dict(zip(FORGERIES, pool.map(run, FORGERIES.values())))
        control = run(CORRECT)
    assert control.passed, control
    assert {n: r.reason for n, r in results.items() if r.passed} == {}
    snoop = ("import os\nfor pid in range(1, 8):\n    for what in ('mem', 'environ', 'maps'):\n        try:\n"
             "            open(f'/proc/{pid}/{what}', 'rb').read(1)\n            if pid != os.getpid():\n"
             "                print('READ', pid, what)\n        except OSError:\n            pass\n"
             "    try:\n        for fd in os.listdir(f'/proc/{pid}/fd'):\n            try:\n"
             "                os.close(os.open(f'/proc/{pid}/fd/{fd}', os.O_WRONLY | os.O_NONBLOCK))\n"
             "                if pid != os.getpid():\n                    print('OPENED', pid, fd)\n"
             "            except OSError:\n                pass\n    except OSError:\n        pass\n")
    seen = run_checked(snoop, None, 10, guard=False, mode="userns")
    assert seen.passed and "READ" not in seen.stdout and "OPENED" not in seen.stdout, seen.stdout


def test_a_program_that_defines_the_tests_own_helpers_does_not_change_them():
    """HumanEval/32's test calls the prompt's poly(); a program that redefines poly to return 0 must not pass."""
    record = HumanEvalPackageSource().records(get_task("code", load_config()).spec.eval)[32]
    task = get_task("code", load_config())
    example = task.example_from_record(record, 32, "test")
    cheat = ("def poly(xs, x):\n    return 0.0\n\n\ndef find_zero(xs):\n    return 12345.0\n")
    assert not task.score(example, {"code": cheat}).correct
    assert task.score(example, dict(example.labels)).correct


def test_big_ints_and_deep_values_are_legitimate_answers():
    program = "def f(n):\n    out = 1\n    for i in range(2, n + 1):\n        out *= i\n    return [out, (out,)]\n"
    tests = "import math\nassert f(3000) == [math.factorial(3000), (math.factorial(3000),)]\n"
    assert run_checked(program, Check(tests=tests, bind=("f",)), 10).passed


def test_the_tests_never_reach_the_programs_memory():
    secret = "EXPECTED-VALUE-" + "7" * 20
    tests = f"assert f() == {secret!r}\n"
    probe = ("import gc\ndef f():\n    hits = [o for o in gc.get_objects() if isinstance(o, str) and "
             "'EXPECTED-VALUE-' in o and 'gc.get_objects' not in o]\n    return hits[0] if hits else 'nothing'\n")
    result = run_checked(probe, Check(tests=tests, bind=("f",)), 10)
    assert not result.passed and "AssertionError" in result.reason


def test_a_program_that_kills_the_checker_or_init_does_not_pass():
    code = ("import posix, signal\n"
            "for pid in range(1, 200):\n    for sig in (signal.SIGKILL, signal.SIGSTOP):\n        try:\n"
            "            posix.kill(pid, sig)\n        except OSError:\n            pass\n"
            "def f():\n    return 1\n")
    result = run_checked(code, Check(tests="assert f() == 2\n", bind=("f",)), 5, guard=False)
    assert not result.passed and result.status in ("failed", "timeout"), result


# ---- the wire: values rebuilt exactly ----------------------------------------------------------------------------

def _random_value(rng: random.Random, depth: int = 0):
    kinds = ["int", "bigint", "float", "special", "str", "bool", "none", "bytes", "complex", "range"]
    if depth < 4:
        kinds += ["list", "tuple", "dict", "set", "frozenset"] * 2
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.randint(-10 ** 6, 10 ** 6)
    if kind == "bigint":
        return rng.choice([-1, 1]) * rng.getrandbits(rng.randint(64, 20000))
    if kind == "float":
        return rng.uniform(-1e9, 1e9) * rng.choice([1, 1e-300, 1e300])
    if kind == "special":
        return rng.choice([math.inf, -math.inf, -0.0, 0.0, 5e-324, 1.7976931348623157e308])
    if kind == "str":
        return "".join(chr(rng.choice([rng.randint(32, 126), rng.randint(0, 0x10FFFF)])) for _ in range(rng.randint(0, 8)))
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "none":
        return None
    if kind == "bytes":
        return rng.randbytes(rng.randint(0, 6))
    if kind == "complex":
        return complex(rng.uniform(-5, 5), rng.uniform(-5, 5))
    if kind == "range":
        return range(rng.randint(-5, 5), rng.randint(-5, 20), rng.choice([1, 2, -1, 3]))
    items = [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if kind == "list":
        return items
    if kind == "tuple":
        return tuple(items)
    hashable = [_freeze(v) for v in items]
    if kind == "set":
        return set(hashable)
    if kind == "frozenset":
        return frozenset(hashable)
    return {k: v for k, v in zip(hashable, items)}


def _freeze(v):
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, (set, frozenset)):
        return frozenset(v)
    if isinstance(v, dict):
        return tuple(sorted(((repr(k), _freeze(x)) for k, x in v.items())))
    if isinstance(v, bytearray):
        return bytes(v)
    return v


def _same(a, b) -> bool:
    """Exactly equal: same types all the way down (True is not 1, (1,) is not [1]), NaN and -0.0 respected."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def test_the_wire_rebuilds_thousands_of_random_values_exactly():
    """Reference: the value itself. encode -> JSON text -> decode must give an equal value of the same types."""
    import sys

    sys.set_int_max_str_digits(0)
    rng = random.Random(20261201)
    for _ in range(3000):
        value = _random_value(rng)
        wire = json.loads(json.dumps(judge.encode(value, _no_other)))
        assert _same(judge.decode(wire, _no_handle), value), value
    nan = judge.decode(json.loads(json.dumps(judge.encode(float("nan"), _no_other))), _no_handle)
    assert math.isnan(nan)


def _no_other(value):
    raise AssertionError(f"unexpected non-plain value {value!r}")


def _no_handle(number, name):
    raise AssertionError("unexpected handle")


def test_subclasses_of_builtins_cross_as_their_base_type_and_never_keep_their_methods():
    import collections
    import enum

    class Lying(int):
        def __eq__(self, other):
            return True

    class Color(enum.IntEnum):
        RED = 1

    Point = collections.namedtuple("Point", "x y")
    cases = [(Lying(3), 3), (Color.RED, 1), (Point(1, 2), (1, 2)), (collections.OrderedDict(a=1), {"a": 1}),
             (collections.Counter("aab"), {"a": 2, "b": 1}), (bytearray(b"hi"), bytearray(b"hi"))]
    for value, expected in cases:
        back = judge.decode(json.loads(json.dumps(judge.encode(value, _no_other))), _no_handle)
        assert _same(back, expected), (value, back)


def test_malformed_wire_data_is_refused_not_trusted():
    bad = [{"t": "dict", "v": [[1]]}, {"t": "set", "v": [[1, 2]]}, {"t": "nope", "v": 1}, {"x": 1},
           {"t": "range", "v": [1, "2", 3]}, {"t": "complex", "v": [1]}, {"t": "h", "v": "1"},
           {"t": "builtin", "v": "exec"}, {"t": "builtin", "v": "no_such_name"}]
    for data in bad:
        with pytest.raises(judge.ProtocolError):
            judge.decode(data, _no_handle)
    # builtin classes cross by name (MBPP 533 passes `int`); builtin functions only towards the program
    assert judge.decode(judge.encode([int, str], _no_other), _no_handle) == [int, str]
    assert judge.decode(judge.encode(len, _no_other), _no_handle, any_builtin=True) is len


def test_intended_deviation_arguments_cross_by_value():
    """Deviation from running program and tests in one interpreter, on purpose: values cross the wire as copies,
    so a program that mutates its argument in place does not change the test's object (sharing it would hand the
    program a live object of the checker). No HumanEval or MBPP test relies on it (164/164 and 974/974 pass)."""
    program = "def f(xs):\n    xs.append(1)\n    return len(xs)\n"
    tests = "xs = []\nassert f(xs) == 1\nassert xs == []\n"
    assert run_checked(program, Check(tests=tests, bind=("f",)), 10).passed


def test_a_remote_object_has_identity_equality_and_no_truth_value():
    """Deviation on purpose: a program's own object never decides `==` or truth (in one interpreter its __eq__
    and __bool__ would): that is how an always-equal object forged a pass."""
    link = judge.Link(-1, -1)
    r = link.remote(1, "Yes")
    assert r == r and r != link.remote(2, "Yes") and not (r == True)  # noqa: E712
    with pytest.raises(TypeError):
        bool(r)
    assert {r: 1}[link.remote(1, "Yes")] == 1  # the same handle number is the same object


# ---- through the real code path: an endpoint serves the forgeries, the baseline runner scores them ----------------

def _forged_function(kind: str, name: str) -> str:
    """A wrong solution named `name` (any signature) carrying one forgery."""
    wrong = f"def {name}(*args, **kwargs):\n    return None\n"
    return {
        "always-equal object": "class Yes:\n    def __eq__(self, o):\n        return True\n"
                               "    def __ne__(self, o):\n        return False\n    __hash__ = object.__hash__\n"
                               f"def {name}(*args, **kwargs):\n    return Yes()\n",
        "posix._exit(0) at import": "import posix\nposix._exit(0)\n" + wrong,
        "__main__ exit-code globals": "import sys\nm = sys.modules['__main__']\n"
                                      "for k in ('EXIT_ASSERTION', 'EXIT_EXCEPTION', 'EXIT_SYSTEM_EXIT'):\n"
                                      "    setattr(m, k, 0)\n" + wrong,
        "fake verdict lines": "print('{\"status\": \"passed\", \"reason\": \"\", \"token\": \"0\"}')\n" + wrong,
        "exit 0 from the call": f"def {name}(*args, **kwargs):\n    import posix\n    posix._exit(0)\n",
    }[kind]


FORGED_KINDS = ["always-equal object", "posix._exit(0) at import", "__main__ exit-code globals",
                "fake verdict lines", "exit 0 from the call"]


def test_forgeries_served_by_an_endpoint_score_zero_in_the_baseline_runner(tmp_path):
    import csv
    import threading

    from conftest import run_cli
    from loopback import ScriptedOpenAI, reply_text
    from sandbox_endpoint import builtin_canonical, entry_point, scripted_models

    canonical = builtin_canonical()
    served: dict[str, str] = {}
    lock = threading.Lock()

    def behaviour(request: dict, index: int):
        name = entry_point(request)
        with lock:
            kind = served.setdefault(name, "correct" if not served else FORGED_KINDS[(len(served) - 1) % 5])
        code = canonical[name][1] if kind == "correct" else _forged_function(kind, name)
        return reply_text(json.dumps({"code": code}))

    with ScriptedOpenAI(behaviour) as server:
        scripted_models(tmp_path, server.url)
        r = run_cli(["src.run_baseline_v2", "--models", "scripted", "--tasks", "code", "--data", "builtin",
                     "--limit", "6", "--adapter", "json", "--no-cache", "--concurrency", "2",
                     "--results-dir", str(tmp_path / "results")], cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [row for p in (tmp_path / "results").rglob("*.csv") for row in csv.DictReader(p.open())]
    by_id = {row["example_id"]: row for row in rows}
    assert len(served) == 6 and set(served.values()) == {"correct", *FORGED_KINDS}
    outcome = {kind: by_id[canonical[name][0]]["is_correct"] for name, kind in served.items()}
    assert outcome == {"correct": "1", **{kind: "0" for kind in FORGED_KINDS}}, outcome

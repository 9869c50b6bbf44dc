"""Nothing a program starts outlives its run: detached, double-forked, signal-ignoring processes and ones started
around the interpreter guard (_posixsubprocess, subinterpreters, pidfd) die with the run; killing the harness
with SIGKILL takes its runs with it and the next start removes their folders; the program holds no capability,
cannot see the judge's processes, and the parent-death signal survives the uid drop. Without kernel isolation the
code task is refused unless the user opts in (--unsafe-exec), which the run then records."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from conftest import ROOT, run_cli
from loopback import ScriptedOpenAI, reply_text
from sandbox_endpoint import builtin_canonical, entry_point, scripted_models
from src.sandbox import host, isolation, lifetime, run_python, runner

SYSTEM_PYTHON = "/usr/bin/python3.11"


def _alive(marker: str) -> list[int]:
    """Live (non-zombie) processes running `sleep <marker>`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if f"sleep {marker}" in cmd and state != "Z" and int(pid) != os.getpid():
            found.append(int(pid))
    return found


def _marker() -> str:
    """A unique `sleep` duration: its command line identifies the run's survivors."""
    return f"{600 + uuid.uuid4().int % 10_000}.{uuid.uuid4().int % 10 ** 6:06d}"


# _posixsubprocess.fork_exec as subprocess calls it on 3.11: a new session running `sleep M`, no audit event.
_FORK_EXEC = ("r, w = os.pipe()\n_posixsubprocess.fork_exec([b'sleep', M.encode()], [b'/bin/sleep'], True, (), None, "
              "None, -1, -1, -1, -1, -1, -1, r, w, True, True, -1, None, None, None, -1, None, False)\n")


def _spawn_sleep_detached(marker: str, how: str) -> str:
    """Program text that starts `sleep <marker>` so as to outlive the run, by the route `how`."""
    routes = {
        "setsid+fork": "import os\nif os.fork() == 0:\n    os.setsid()\n    os.execv('/bin/sleep', ['sleep', M])\n",
        "double fork": "import os\nif os.fork() == 0:\n    if os.fork() == 0:\n        os.setsid()\n"
                       "        os.execv('/bin/sleep', ['sleep', M])\n    os._exit(0)\nos.wait()\n",
        "ignores SIGTERM and SIGHUP": "import os, signal\nif os.fork() == 0:\n    os.setsid()\n"
                                      "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                      "    signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
                                      "    os.execv('/bin/sleep', ['sleep', M])\n",
        "_posixsubprocess": "import _posixsubprocess, os\n" + _FORK_EXEC,
        # A subinterpreter has no audit hook of ours; fork() is fatal there, so it spawns with fork_exec too.
        "subinterpreter": "import _xxsubinterpreters as si\n"
                          "si.run_string(si.create(isolated=False), 'M = ' + repr(M) + '\\n"
                          "import _posixsubprocess, os\\n' + " + repr(_FORK_EXEC) + ")\n",
    }
    return f"M = {marker!r}\n" + routes[how] + "import time\ntime.sleep(0.3)\n"


_SAW_IT = ("import os\nassert any(f'sleep {M}' in open(f'/proc/{p}/cmdline', 'rb').read().replace(b'\\0', b' ')"
           ".decode() for p in os.listdir('/proc') if p.isdigit() and os.path.exists(f'/proc/{p}/cmdline')), "
           "'the detached process never started'\n")
ROUTES = ["setsid+fork", "double fork", "ignores SIGTERM and SIGHUP", "_posixsubprocess", "subinterpreter"]


@pytest.mark.parametrize("how", ROUTES)
def test_nothing_a_program_starts_outlives_its_run(how):
    """With the guard off (as if bypassed), only the kernel layers stand between these and a survivor."""
    marker = _marker()
    # The program checks that its process really started before the run ends (else the test proves nothing).
    code = _spawn_sleep_detached(marker, how) + _SAW_IT
    result = run_python(code, 5.0, guard=False)
    assert result.passed, result
    assert _alive(marker) == [], f"{how}: a process of the run survived it"


@pytest.mark.parametrize("how", ["setsid+fork", "double fork"])
def test_plain_mode_reaps_detached_processes_too(how, monkeypatch):
    """No PID namespace: init is a subreaper (and the run has a cgroup where the kernel offers one)."""
    if os.geteuid() == 0:
        if not (os.path.exists(SYSTEM_PYTHON) and runner.world_reachable(SYSTEM_PYTHON)):
            pytest.skip("no world-reachable interpreter for plain mode's unprivileged uid")
        monkeypatch.setenv(host.PYTHON_ENV, SYSTEM_PYTHON)
    marker = _marker()
    result = run_python(_spawn_sleep_detached(marker, how) + _SAW_IT, 5.0, guard=False, mode="plain")
    assert result.passed, result
    assert _alive(marker) == []


def test_the_guard_refuses_the_bypass_routes_it_knows():
    for how in ("_posixsubprocess", "subinterpreter", "setsid+fork"):
        result = run_python(_spawn_sleep_detached(_marker(), how), 5.0)
        assert not result.passed and "not allowed in the sandbox" in result.reason, (how, result.reason)


def test_pidfd_signals_cannot_kill_the_judge():
    """The program may signal anything it can see; init ignores it and the checker is another uid (or hidden)."""
    if not isolation().pid_namespace:
        pytest.skip("needs a PID namespace")
    code = ("import os, signal\nsent = []\nfor pid in set(range(1, 64)) - {os.getpid()}:\n    try:\n        fd = os.pidfd_open(pid)\n"
            "        signal.pidfd_send_signal(fd, signal.SIGKILL)\n        sent.append(pid)\n    except OSError:\n"
            "        pass\nprint('signalled', sent)\n")
    result = run_python(code, 5.0, guard=False)
    assert result.status == "passed", result  # the checker and init lived to give the verdict
    assert "signalled" in result.stdout


def test_the_program_holds_no_capability_and_cannot_see_the_judge():
    code = ("import os\nst = dict(l.split(':', 1) for l in open('/proc/self/status'))\n"
            "print({k: int(st[k], 16) for k in ('CapEff', 'CapPrm', 'CapBnd', 'CapAmb')})\n"
            "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()), os.getpid())\n")
    result = run_python(code, 5.0, guard=False)
    assert result.passed, result
    caps, pids = result.stdout.splitlines()[:2]
    assert set(eval(caps).values()) == {0}  # noqa: S307 - our own program's output
    if isolation().private_root:  # hidepid: init and the checker run as other uids and are invisible
        visible, me = pids.rsplit(" ", 1)
        assert eval(visible) == [int(me)]  # noqa: S307


def test_the_parent_death_signal_survives_the_uid_drop():
    code = ("import ctypes, signal\nv = ctypes.c_int()\nlibc = ctypes.CDLL(None)\n"
            "libc.prctl(2, ctypes.byref(v), 0, 0, 0)\nassert v.value == signal.SIGKILL, v.value\n")
    result = run_python(code, 5.0, guard=False)
    assert result.passed, result


@pytest.mark.slow
def test_sigkill_of_the_harness_ends_its_runs_and_the_next_start_cleans_up(tmp_path):
    marker = _marker()
    # The marker reaches the harness through its environment: in its command line, _alive would find the harness.
    # The program starts `sleep <marker>` and waits; an exec of the program's own process would end the run at
    # once (its pipes to the checker close on exec).
    script = ("import os\nfrom src.sandbox import run_python\n"
              "run_python(f\"import os, time\\nif os.fork() == 0:\\n    os.execv('/bin/sleep', ['sleep', "
              "{os.environ['MARK']!r}])\\ntime.sleep(120)\\n\", 120, guard=False)\n")
    before = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith(lifetime.FOLDER_PREFIX)}
    harness = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT), "MARK": marker})
    try:
        deadline = time.monotonic() + 60
        while not _alive(marker):
            assert harness.poll() is None and time.monotonic() < deadline, "the sandboxed program never started"
            time.sleep(0.05)
        ours = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith(lifetime.FOLDER_PREFIX)} - before
        harness.send_signal(signal.SIGKILL)
        harness.wait()
        deadline = time.monotonic() + 5
        while _alive(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _alive(marker) == [], "the program outlived its harness"
        orphans = {p for p in ours if os.path.isdir(os.path.join(tempfile.gettempdir(), p))}
        assert orphans, "expected the killed harness to leave its run folder behind"
        parent = lifetime.cgroup_parent()
        # The next start (a fresh process's first sandbox use) removes them.
        r = subprocess.run([sys.executable, "-c", "from src.sandbox import isolation; isolation()"], cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert not [p for p in orphans if os.path.exists(os.path.join(tempfile.gettempdir(), p))]
        if parent:
            assert not [p for p in orphans if os.path.exists(os.path.join(parent, p))]
    finally:
        if harness.poll() is None:
            harness.kill()


def test_a_live_runs_folder_is_never_cleaned():
    folder = lifetime.RunFolder()
    try:
        assert folder.path not in lifetime.clean_orphans(None)
        assert os.path.isdir(folder.path)
    finally:
        folder.close()
    assert not os.path.exists(folder.path)


# ---- no kernel isolation: refused unless opted in, and recorded ---------------------------------------------------

def test_without_kernel_isolation_the_code_task_is_refused_before_any_lm_call(tmp_path):
    with ScriptedOpenAI(lambda req, i: reply_text(json.dumps({"code": "def f():\n    return 1\n"}))) as server:
        scripted_models(tmp_path, server.url)
        r = run_cli(["src.run_baseline_v2", "--models", "scripted", "--tasks", "code", "--data", "builtin",
                     "--limit", "2", "--adapter", "json", "--no-cache", "--results-dir", str(tmp_path / "results")],
                    cwd=tmp_path, env={host.NO_NAMESPACES_ENV: "1", "PYTHONPATH": str(ROOT)}, timeout=300)
        assert r.returncode != 0
        assert "Traceback" not in r.stderr
        refusal = [ln for ln in r.stderr.splitlines() if "--unsafe-exec" in ln]
        assert refusal and "no kernel isolation" in refusal[0], r.stderr
        assert server.requests == []  # not one LM call


@pytest.mark.slow
def test_unsafe_exec_runs_without_namespaces_and_is_recorded(tmp_path):
    if os.geteuid() == 0 and not (os.path.exists(SYSTEM_PYTHON) and runner.world_reachable(SYSTEM_PYTHON)):
        pytest.skip("a root host needs a world-reachable interpreter to run plain mode unprivileged")
    canonical = builtin_canonical()
    with ScriptedOpenAI(lambda req, i: reply_text(json.dumps({"code": canonical[entry_point(req)][1]}))) as server:
        scripted_models(tmp_path, server.url)
        env = {host.NO_NAMESPACES_ENV: "1", host.PYTHON_ENV: SYSTEM_PYTHON, "PYTHONPATH": str(ROOT)}
        r = run_cli(["src.run_baseline_v2", "--models", "scripted", "--tasks", "code", "--data", "builtin",
                     "--limit", "2", "--adapter", "json", "--no-cache", "--unsafe-exec",
                     "--results-dir", str(tmp_path / "results")], cwd=tmp_path, env=env, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
    sidecars = [json.loads(p.read_text()) for p in (tmp_path / "results").rglob("*.json")
                if "unsafe_exec" in p.read_text()]
    assert sidecars, "no sidecar records --unsafe-exec"
    run = next(s["run"] for s in sidecars if "run" in s)
    assert run["sandbox"]["unsafe_exec"] is True and "mode=plain" in run["sandbox"]["isolation"]


def test_the_experiment_runner_forwards_unsafe_exec_to_every_stage_that_scores_code(embedded_config, tmp_path):
    r = run_cli(["src.experiment", "--preset", "embedded", "--tasks", "code", "--limit", "2", "--dry-run",
                 "--unsafe-exec", "--results-dir", str(tmp_path / "results")], timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    stages = [ln for ln in r.stdout.splitlines() if ln.strip().startswith("python -m src.")]
    scoring = [ln for ln in stages if "consolidate" not in ln]
    assert scoring and all(ln.rstrip().endswith("--unsafe-exec") or " --unsafe-exec" in ln for ln in scoring)
    assert not [ln for ln in stages if "consolidate" in ln and "--unsafe-exec" in ln]

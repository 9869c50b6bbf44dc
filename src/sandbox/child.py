"""The sandbox's child side: run as `python -I -S -B child.py --boot spec.json`. Standard library only (it runs
before any site-packages are reachable, and must not import the project).

The booted process becomes the run's *init* (PID 1 of its own PID namespace, or a child subreaper in plain
mode). It never runs a line of the program. It enters the private root, then forks:

- the *worker*, which closes every descriptor but its two pipes, drops to the run's throwaway uid (or, in a user
  namespace, to no capabilities at all), sets rlimits, installs the guard and runs the program (judge.py);
- the *checker*, which drops to a second throwaway uid (or no capabilities), becomes non-dumpable (so the worker
  can neither ptrace it nor open its /proc files) and runs the tests against the worker (judge.py).

Init waits for the checker, kills everything that is left (`kill(-1)` as a namespace's PID 1; every descendant
it has adopted as a subreaper in plain mode), then writes the verdict with the matching per-run token: the host
sends a pass token and another one through a memfd that only init reads after the worker was forked, so the
program's process never holds them, and a "passed" without the pass token is rejected. Init also holds the
read end of the host's *lifeline* pipe: if the host dies, even by SIGKILL, the pipe reports end-of-file and
init ends the run at once; in a PID namespace that kills every process of it.
"""

from __future__ import annotations

import json
import os
import signal
import sys

EXIT_SETUP = 104
SETUP_PREFIX = "IA_SANDBOX_SETUP: "
_REAL_EXIT = os._exit  # the guard replaces os._exit in the worker; our own exits keep the real one
_iso = None  # isolate.py, loaded at boot


def _boot(spec_path: str) -> None:
    try:
        with open(spec_path, encoding="utf-8") as fh:
            spec = json.load(fh)
        with open(spec["program"], encoding="utf-8") as fh:
            code = fh.read()
        global _iso
        _iso = _load("isolate")  # both before the host's folders disappear behind the private root
        judge = _load("judge")
        _iso.prctl(_iso.PR_SET_DUMPABLE, 0)  # nobody of the run's uid may ptrace init or open its /proc files
        if spec["mode"] == "plain":
            # No PID namespace: adopt every orphan of the run so none can slip away, and die with the host.
            _iso.prctl(_iso.PR_SET_CHILD_SUBREAPER, 1)
            _iso.prctl(_iso.PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != spec["host_pid"]:
                raise RuntimeError("the host ended before the sandbox started")
        if spec["cgroup"]:
            with open(os.path.join(spec["cgroup"], "cgroup.procs"), "w") as fh:
                fh.write("0")  # init and everything it starts: the host can kill the cgroup as a whole
        if spec["mode"] == "plain":
            os.chdir(spec["work"])
        else:
            _iso.enter_private_root(spec)
        rc = _init(spec, code, judge)  # init's own failures (a fork refused...) are the sandbox's too
    except BaseException as exc:  # noqa: BLE001 - any setup failure is the sandbox's, not the program's
        _setup_failed(exc)
    _REAL_EXIT(rc)


def _setup_failed(exc: BaseException) -> None:
    try:
        sys.stderr.write(f"\n{SETUP_PREFIX}{type(exc).__name__}: {exc}\n")
        sys.stderr.flush()
    finally:
        _REAL_EXIT(EXIT_SETUP)


def _load(name: str):
    """A stdlib-only sibling module (isolate.py, judge.py) by file name: the project package is not importable
    here. The host keeps their bytecode caches fresh (-B only stops us writing one)."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    try:
        return __import__(name)
    finally:
        sys.path.remove(here)
        sys.modules.pop(name, None)


# ---- init ---------------------------------------------------------------------------------------------------------

def _init(spec: dict, code: str, judge) -> int:
    import select

    fds = spec["fds"]
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    worker = os.fork()
    if worker == 0:
        _become_worker(spec, code, judge, req_r, rep_w)
    # Only now read the verdict tokens and the tests: they were never in the memory the worker was forked from.
    payload = json.loads(os.pread(fds["secret"], os.fstat(fds["secret"]).st_size, 0) or b"{}")
    os.close(fds["secret"])
    tokens = payload.pop("tokens")
    rpt_r, rpt_w = os.pipe()
    checker = os.fork()
    if checker == 0:
        del tokens
        _become_checker(spec, payload.get("check"), judge, req_w, rep_r, rpt_w)
    for fd in (req_r, req_w, rep_r, rep_w, rpt_w):
        os.close(fd)
    report, statuses, watch = bytearray(), {}, [fds["lifeline"], wake_r, rpt_r]
    while checker not in statuses or rpt_r in watch:
        ready = select.select(watch, [], [])[0]
        if fds["lifeline"] in ready and not os.read(fds["lifeline"], 1):
            _end_everything(spec)  # the host is gone: nobody will read a verdict
            return 0
        if rpt_r in ready:
            chunk = os.read(rpt_r, 65536)
            if chunk and len(report) < 65536:
                report += chunk
            elif not chunk:
                watch.remove(rpt_r)
        if wake_r in ready:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        _reap(statuses)
    worker_done = statuses.get(worker)  # before we kill it: did the program's process end by itself?
    _end_everything(spec)
    status, reason = _verdict(bytes(report), statuses[checker], worker_done)
    # The pass token exists only here and in the host: nobody who reads a failed verdict learns it.
    token = tokens["pass"] if status == "passed" else tokens["other"]
    os.write(fds["verdict"], (json.dumps({"status": status, "reason": reason, "token": token}) + "\n").encode())
    return 0


def _reap(statuses: dict[int, int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        statuses[pid] = status


def _end_everything(spec: dict) -> None:
    """Kill every process of the run but init, and reap them."""
    import time

    if os.getpid() == 1:  # a PID namespace's init: -1 is exactly the run's processes
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return
        return
    # Plain mode: as a subreaper, every process the run started is our descendant; orphans become our
    # children, so kill the children we have until none are left.
    me = str(os.getpid())
    for _ in range(500):
        children = [pid for pid in _children(me)]
        if not children:
            return
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def _children(parent: str) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
                    if fh.read().rsplit(")", 1)[1].split()[1] == parent:
                        out.append(int(pid))
            except (OSError, IndexError):
                pass
    return out


def _verdict(report: bytes, checker_status: int, worker_status: int | None) -> tuple[str, str]:
    try:
        data = json.loads(report)
        status, reason = str(data["status"]), str(data["reason"])
    except (ValueError, KeyError, TypeError):
        return "failed", f"the judge ended without a verdict ({_describe(checker_status)})"
    if status not in ("passed", "failed", "error"):
        return "failed", f"the judge gave an unknown status {status!r}"
    if status == "failed" and reason.startswith("the program's process ended") and worker_status is not None:
        reason += f" ({_describe(worker_status)})"
    return status, reason[:2000]


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        try:
            name = signal.Signals(os.WTERMSIG(status)).name
        except ValueError:
            name = f"signal {os.WTERMSIG(status)}"
        why = {"SIGKILL": " (CPU limit or killed)", "SIGXCPU": " (CPU limit)", "SIGXFSZ": " (file size limit)",
               "SIGSEGV": " (crash, e.g. recursion or memory)"}.get(name, "")
        return f"killed by {name}{why}"
    return f"exit code {os.WEXITSTATUS(status)}"


# ---- worker and checker -----------------------------------------------------------------------------------------

def _as_child(keep: tuple[int, ...]) -> None:
    """A forked child of init: default signal handling, and only the descriptors it needs (stdio + `keep`)."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    low = 3
    for fd in sorted(k for k in keep if k >= 3):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 30)


def _become_worker(spec: dict, code: str, judge, requests: int, replies: int) -> None:
    out, err = sys.stdout, sys.stderr
    try:
        _as_child((requests, replies))  # lifeline, secret, verdict and wake-up fds: gone from here on
        uid = spec["uids"]["worker"] if spec["uids"] else None
        _iso.drop_privileges(spec, uid)
        if spec["mode"] != "plain":  # plain: init's cwd, the work folder, which a dropped uid could not reach
            os.chdir(_iso.INSIDE_HOME)
        _iso.set_limits(spec, uid)
        import types

        sys.set_int_max_str_digits(0)  # a big int is a legitimate answer; it crosses the wire as JSON text
        module = types.ModuleType("__sandbox__")  # not __main__: demo blocks under `if __name__ == "__main__"` skip
        sys.modules["__sandbox__"] = module
        if spec["guard"]:
            _iso.install_guard(private_root=spec["mode"] != "plain")
    except BaseException as exc:  # noqa: BLE001
        try:
            judge.write_frame(replies, {"err": [judge.SETUP_ERROR, f"{type(exc).__name__}: {exc}"[:300]]})
        finally:
            _setup_failed(exc)

    def flush() -> None:
        for stream in (out, err):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001 - the program may have closed or replaced it
                pass

    try:
        judge.run_worker(code, module.__dict__, requests, replies, flush)
    finally:  # whatever happens (a closed pipe, MemoryError), never unwind into init's frames in this process
        flush()
        _REAL_EXIT(0)


def _become_checker(spec: dict, check: dict | None, judge, requests: int, replies: int, report: int) -> None:
    try:
        _as_child((requests, replies, report))
        _iso.drop_privileges(spec, spec["uids"]["checker"] if spec["uids"] else None)
        _iso.prctl(_iso.PR_SET_DUMPABLE, 0)  # the uid change resets it; the worker must not read or trace us
        os.chdir("/")
        _iso.set_limits(spec, spec["uids"]["checker"] if spec["uids"] else None)
        status, reason = judge.run_checker(check, judge.Link(requests, replies))
    except BaseException as exc:  # noqa: BLE001 - our own failure, never a pass
        status, reason = "error", f"sandbox setup failed: {type(exc).__name__}: {exc}"[:300]
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os.write(report, json.dumps({"status": status, "reason": reason}).encode())
        _REAL_EXIT(0)


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--boot":
    _boot(sys.argv[2])

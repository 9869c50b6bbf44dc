"""One sandbox run in a given mode: lay out its folder, start child.py (through `unshare` for the namespace
modes), wait for it with a wall-clock timeout, kill what is left, and read its authenticated verdict. host.py
chooses the mode (by probing) and is the public face; this module is the mechanics."""

from __future__ import annotations

import hmac
import json
import os
import secrets
import sys
import threading
import time
from dataclasses import asdict, dataclass

from src.sandbox import lifetime
from src.sandbox.child import EXIT_SETUP, SETUP_PREFIX
from src.sandbox.isolate import INSIDE_HOME, namespace_id

MAX_OUTPUT_CHARS = 4000
CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "child.py")
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
# Throwaway uids for a root host: far from system and subuid ranges; offset by our pid so that two concurrent
# host processes rarely share one (sharing would only merge their RLIMIT_NPROC counts). Slot s of a host runs
# its program as base + s and its checker as base + 50 + s.
_UID_BASE = 1_000_000_000
_SLOTS = 50
NO_NAMESPACES_ENV = "IA_SANDBOX_NO_NAMESPACES"  # "1": behave as if unshare were missing (tests, odd kernels)
PYTHON_ENV = "IA_SANDBOX_PYTHON"  # another stdlib-complete python3 to run programs with (default: our base one)


@dataclass(frozen=True)
class ExecResult:
    """What happened to one program. Anything but status 'passed' counts as a failure."""

    passed: bool
    status: str  # passed | failed (ran and failed, or hit a limit) | timeout (wall clock) | error (sandbox broke)
    stdout: str
    stderr: str
    duration_s: float
    reason: str = ""  # why it did not pass: exception type, failing test line, signal, limit


@dataclass(frozen=True)
class Check:
    """The tests that judge a program, run by the checker process (never in the program's interpreter).

    `context` then `tests` are executed in a fresh namespace where each name in `bind` is the program's object
    of that name (a Remote proxy, judge.py) and each name in `modules` is the standard-library module the checker
    imports itself; then, if `call` is set, `call(<the program's candidate>)` runs (HumanEval's check(candidate)).
    Both `context` and `tests` come from the dataset, never from the model."""

    tests: str
    context: str = ""
    bind: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    call: str | None = None
    candidate: str | None = None


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 512  # RLIMIT_AS; x max_procs bounds the worst case a fork bomb can touch
    max_procs: int = 16  # RLIMIT_NPROC (threads count too)
    file_mb: int = 16  # RLIMIT_FSIZE: bounds captured output and files written
    open_files: int = 256
    tmp_mb: int = 64  # size of the private /tmp (namespaces modes)


DEFAULT_LIMITS = Limits()


_slot_cond = threading.Condition()
_free_slots = list(range(_SLOTS))


class uid_slot:
    """A slot number (-> throwaway uids) nobody else in this process uses during the run."""

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


def _uids_for(slot: int) -> dict[str, int]:
    base = _UID_BASE + (os.getpid() % 100_000) * 100
    return {"worker": base + slot, "checker": base + _SLOTS + slot}


def interpreter() -> tuple[str, str]:
    """(executable, prefix) of the interpreter programs run with: the venv's base interpreter (the venv adds
    nothing generated code may use), or IA_SANDBOX_PYTHON."""
    override = os.environ.get(PYTHON_ENV)
    if override:
        exe = os.path.realpath(override)
        return exe, os.path.dirname(os.path.dirname(exe))
    exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    return exe, os.path.realpath(sys.base_prefix)


def world_reachable(path: str) -> bool:
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
    exe, _ = interpreter()
    boot = [exe, "-I", "-S", "-B", CHILD, "--boot", spec_path]
    if mode == "plain":
        return boot
    import shutil

    unshare = shutil.which("unshare", path=SAFE_PATH + ":/sbin:/usr/sbin") or "unshare"
    user = ["--user", "--map-root-user"] if mode == "userns" else []
    return [unshare, *user, "--mount", "--propagation", "private", "--net", "--pid", "--fork",
            "--kill-child", "--", *boot]


def run_once(program: str, check: Check | None, timeout_s: float, guard: bool, limits: Limits, mode: str, slot: int,
         cgroups: str | None) -> ExecResult:
    import subprocess

    start = time.perf_counter()
    exe, prefix = interpreter()
    uids = None
    if os.geteuid() == 0:
        # A root host never runs generated code as root: namespaces mode drops to throwaway uids; plain mode can
        # only if those uids can still reach the interpreter's files (a pyenv under /root, mode 0700, they cannot).
        if mode == "plain" and not (world_reachable(exe) and world_reachable(prefix)):
            return ExecResult(False, "error", "", "", time.perf_counter() - start,
                              f"refusing to run generated code as root: without namespaces the program must run "
                              f"as an unprivileged uid, which cannot reach the interpreter {exe} (set "
                              f"{PYTHON_ENV} to a world-readable python3)")
        if mode != "userns":
            uids = _uids_for(slot)
    folder = lifetime.RunFolder()
    host = folder.path
    cgroup = None
    fds: list[int] = []
    try:
        if cgroups:
            cgroup = lifetime.create_cgroup(cgroups, folder.name)
        work = os.path.join(host, "work")
        newroot = os.path.join(host, "root")
        os.mkdir(work, 0o700)
        os.mkdir(newroot, 0o755)
        if uids is not None and mode == "plain":
            os.chown(work, uids["worker"], uids["worker"])
        program_path = os.path.join(host, "program.py")
        with open(program_path, "w", encoding="utf-8") as fh:
            fh.write(program)
        # The verdict tokens and the tests go through a memfd: no file name anyone could open, and only init
        # reads it (after forking the program's process).
        tokens = {"pass": secrets.token_hex(32), "other": secrets.token_hex(32)}
        secret = os.memfd_create("ia-sandbox-judge")
        fds.append(secret)
        os.write(secret, json.dumps({"tokens": tokens, "check": asdict(check) if check else None}).encode())
        verdict_r, verdict_w = os.pipe()
        lifeline_r, lifeline_w = os.pipe()
        fds += [verdict_r, verdict_w, lifeline_r, lifeline_w]
        spec = {
            "program": program_path, "mode": mode, "guard": guard, "newroot": newroot, "work": work, "uids": uids,
            "prefix": prefix, "host_mnt_ns": namespace_id("mnt"), "host_pid": os.getpid(), "tmp_mb": limits.tmp_mb,
            "cgroup": cgroup, "fds": {"secret": secret, "verdict": verdict_w, "lifeline": lifeline_r},
            "limits": {"as": limits.memory_mb * 2 ** 20, "cpu": int(timeout_s) + 2, "nproc": limits.max_procs,
                       "fsize": limits.file_mb * 2 ** 20, "nofile": limits.open_files},
        }
        spec_path = os.path.join(host, "spec.json")
        with open(spec_path, "w", encoding="utf-8") as fh:
            json.dump(spec, fh)
        home = work if mode == "plain" else INSIDE_HOME
        env = {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": home, "TMPDIR": home}
        out_path, err_path = os.path.join(host, "stdout"), os.path.join(host, "stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(_command(mode, spec_path), stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=err, env=env, cwd=work if mode == "plain" else host,
                                        start_new_session=True, close_fds=True,
                                        pass_fds=(secret, verdict_w, lifeline_r))
            except OSError as exc:
                return ExecResult(False, "error", "", f"cannot start the sandbox: {exc}",
                                  time.perf_counter() - start, "sandbox did not start")
            for fd in (secret, verdict_w, lifeline_r):  # the run's copies only: ours would keep the pipes open
                os.close(fd)
                fds.remove(fd)
            timed_out = False
            try:
                rc = _wait(proc, timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                lifetime.signal_group(proc.pid)
                rc = proc.wait()
            except BaseException:  # e.g. KeyboardInterrupt: never leave the run behind
                lifetime.signal_group(proc.pid)
                proc.wait()
                raise
            finally:
                lifetime.kill_group(proc.pid)  # stragglers too, not only on timeout
                if cgroup:
                    lifetime.end_cgroup(cgroup)
                    cgroup = None
        duration = time.perf_counter() - start
        verdict, forged = _read_verdict(verdict_r, tokens)
        stdout, _ = _read_capped(out_path)
        stderr, tail = _read_capped(err_path)
        return _result(rc, timed_out, verdict, forged, stdout, stderr, tail, duration, timeout_s)
    finally:
        for fd in fds:
            os.close(fd)
        if cgroup:
            lifetime.end_cgroup(cgroup)
        folder.close()


def _wait(proc, timeout_s: float) -> int:
    """proc.wait(timeout), woken the instant the process ends (Popen.wait polls with sleeps of up to 50 ms)."""
    import select
    import subprocess

    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # kernel < 5.3
        return proc.wait(timeout=timeout_s)
    try:
        if not select.select([pidfd], [], [], timeout_s)[0]:
            raise subprocess.TimeoutExpired(proc.args, timeout_s)
    finally:
        os.close(pidfd)
    return proc.wait()


def _read_verdict(fd: int, tokens: dict[str, str]) -> tuple[tuple[str, str] | None, int]:
    """(status, reason) from the verdict line that carries the right token, and the number of lines that did not
    (a "passed" needs the pass token, which only init ever had)."""
    os.set_blocking(fd, False)
    data = b""
    try:
        while chunk := os.read(fd, 65536):
            data += chunk
            if len(data) > 1 << 20:
                break
    except BlockingIOError:
        pass
    verdict, forged = None, 0
    for line in data.splitlines():
        try:
            msg = json.loads(line)
            status, reason, token = str(msg["status"]), str(msg["reason"]), str(msg["token"])
        except (ValueError, KeyError, TypeError):
            forged += 1
            continue
        if hmac.compare_digest(token, tokens["pass" if status == "passed" else "other"]) and verdict is None:
            verdict = (status, reason)
        else:
            forged += 1
    return verdict, forged


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


def _result(rc: int, timed_out: bool, verdict: tuple[str, str] | None, forged: int, stdout: str, stderr: str,
            tail: str, duration: float, timeout_s: float) -> ExecResult:
    if timed_out:
        return ExecResult(False, "timeout", stdout, stderr, duration, f"wall-clock timeout ({timeout_s:g}s)")
    if verdict is not None:
        status, reason = verdict
        if status not in ("passed", "failed", "error"):
            status, reason = "error", f"unknown verdict {status!r}"
        return ExecResult(status == "passed", status, stdout, stderr, duration, reason)
    setup = [ln[len(SETUP_PREFIX):].strip() for ln in tail.splitlines() if ln.startswith(SETUP_PREFIX)]
    if rc == EXIT_SETUP or setup:
        return ExecResult(False, "error", stdout, stderr, duration,
                          f"sandbox setup failed: {setup[-1] if setup else 'unknown'}")
    last = stderr.strip().splitlines()[-1][:200] if stderr.strip() else ""
    status = "error" if last.startswith("unshare:") else "failed"
    note = f"; {forged} unauthenticated verdict line(s) rejected" if forged else ""
    return ExecResult(False, status, stdout, stderr, duration,
                      f"no verdict from the sandbox (exit code {rc}{note})" + (f": {last}" if last else ""))

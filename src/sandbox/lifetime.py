"""Ties every sandbox run's lifetime to the host process: a run folder locked for as long as its host lives, one
cgroup per run where the kernel offers one (killed as a whole at the end), killing the run's process group, and
cleaning up what a host killed with SIGKILL left behind (its folders and cgroups) at the next start.

The processes themselves are tied to the host by child.py (the lifeline pipe, a PID namespace's init or a
subreaper); what outlives a dead host is only files and cgroup directories, and `clean_orphans` removes those.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import tempfile
import time

FOLDER_PREFIX = "ia-sandbox-"
LOCK_NAME = "owner.lock"
UNLOCKED_GRACE_S = 600  # a folder without a lock file (older code, or created this instant) is left this long


class RunFolder:
    """A fresh private folder for one run, flock-ed until `close()`: a folder whose lock is free has no live owner."""

    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix=FOLDER_PREFIX)
        self._lock = os.open(os.path.join(self.path, LOCK_NAME), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self.name = os.path.basename(self.path)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)  # still locked: a cleaner never races the owner
        os.close(self._lock)


def clean_orphans(cgroup_parent: str | None) -> list[str]:
    """Remove run folders (and their cgroups) whose owner is gone; returns the folders removed."""
    removed = []
    tmp = tempfile.gettempdir()
    try:
        entries = [e for e in os.scandir(tmp) if e.name.startswith(FOLDER_PREFIX)]
    except OSError:
        entries = []
    for entry in entries:
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_uid != os.geteuid():
                continue
        except OSError:
            continue
        try:
            lock = os.open(os.path.join(entry.path, LOCK_NAME), os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            try:
                stale = time.time() - entry.stat(follow_symlinks=False).st_mtime > UNLOCKED_GRACE_S
            except OSError:
                continue
            if stale:
                _remove_run(entry.path, cgroup_parent)
                removed.append(entry.path)
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its host is alive
            os.close(lock)
            continue
        try:
            _remove_run(entry.path, cgroup_parent)
            removed.append(entry.path)
        finally:
            os.close(lock)
    if cgroup_parent:
        _clean_orphan_cgroups(cgroup_parent, tmp)
    return removed


def _remove_run(path: str, cgroup_parent: str | None) -> None:
    if cgroup_parent:
        cgroup = os.path.join(cgroup_parent, os.path.basename(path))
        if os.path.isdir(cgroup):
            end_cgroup(cgroup)
    shutil.rmtree(path, ignore_errors=True)


def _clean_orphan_cgroups(parent: str, tmp: str) -> None:
    """Cgroups of runs whose folder is gone (the host died between removing the two)."""
    try:
        names = [n for n in os.listdir(parent) if n.startswith(FOLDER_PREFIX)]
    except OSError:
        return
    for name in names:
        path = os.path.join(parent, name)
        if os.path.exists(os.path.join(tmp, name)):
            continue
        try:
            old = time.time() - os.stat(path).st_mtime > UNLOCKED_GRACE_S
        except OSError:
            continue
        if old or not _populated(path):
            end_cgroup(path)


# ---- cgroups ------------------------------------------------------------------------------------------------------

def cgroup_parent() -> str | None:
    """Our own cgroup-v2 directory if we may create cgroups under it (root, or a delegated subtree), else None."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as fh:
            own = next((ln.strip()[3:] for ln in fh if ln.startswith("0::")), None)
        with open("/proc/self/mounts", encoding="utf-8") as fh:
            mounts = [ln.split()[1] for ln in fh if ln.split()[2:3] == ["cgroup2"]]
    except OSError:
        return None
    if own is None or not mounts:
        return None
    for mount in mounts:
        path = os.path.normpath(mount + "/" + own.lstrip("/"))
        if os.path.isfile(os.path.join(path, "cgroup.procs")) and os.access(path, os.W_OK):
            return path
    return None


def create_cgroup(parent: str, name: str) -> str:
    path = os.path.join(parent, name)
    os.mkdir(path)
    return path


def end_cgroup(path: str, wait_s: float = 5.0) -> None:
    """Kill every process in the cgroup (cgroup.kill, or one by one on older kernels) and remove it."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with open(os.path.join(path, "cgroup.kill"), "w") as fh:
                fh.write("1")
        except FileNotFoundError:
            if not os.path.isdir(path):
                return
            for pid in _procs(path):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        except OSError:
            pass
        if not _populated(path) or time.monotonic() > deadline:
            break
        time.sleep(0.002)
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:  # EBUSY for the instants the killed processes take to leave
            if time.monotonic() > deadline:
                return
            time.sleep(0.005)


def _procs(path: str) -> list[int]:
    try:
        with open(os.path.join(path, "cgroup.procs"), encoding="ascii") as fh:
            return [int(x) for x in fh.read().split()]
    except (OSError, ValueError):
        return []


def _populated(path: str) -> bool:
    try:
        with open(os.path.join(path, "cgroup.events"), encoding="ascii") as fh:
            return "populated 1" in fh.read()
    except OSError:
        return bool(_procs(path))


# ---- the run's process group ---------------------------------------------------------------------------------------

def signal_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_group(pgid: int, wait_s: float = 5.0) -> None:
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

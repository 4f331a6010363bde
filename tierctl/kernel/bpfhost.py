"""The host facilities the BPF samplers rely on, behind one adapter: tracefs (found, or mounted while
needed), kernel BPF run-time statistics (BPF_ENABLE_STATS, else the ``bpf_stats_enabled`` sysctl,
restored on release), a loaded program's run time (``/proc/self/fdinfo``), the cgroup v2 mount
point and this process's effective capabilities. Every path is a parameter with the real one as
its default, so tests point them at a fake tree.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import threading
from pathlib import Path

from tierctl.errors import UnavailableError
from tierctl.kernel.procfs import status_caps

TRACEFS_MOUNTS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
BPF_STATS_SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")
PROC = Path("/proc")
CGROUP2_DEFAULT = Path("/sys/fs/cgroup")

_lock = threading.Lock()  # the tracefs mount and the stats switch are per process


# ------------------------------------------------------------------------------------ tracefs
def tracefs_dir(mounts: tuple[Path, ...] = TRACEFS_MOUNTS) -> Path | None:
    for p in mounts:
        if (p / "events").is_dir():
            return p
    return None


def tracepoint_available(category: str, event: str, *, proc: Path = PROC) -> tuple[bool, str]:
    d = tracefs_dir()
    if d is None:
        fs = proc / "filesystems"
        if fs.exists() and "tracefs" not in fs.read_text():
            return False, "the kernel has no tracefs (CONFIG_TRACING off)"
        return True, "tracefs not mounted: it will be mounted at /sys/kernel/tracing while sampling"
    if (d / "events" / category / event / "format").exists():
        return True, f"tracepoint {category}:{event}"
    return False, f"the kernel has no tracepoint {category}:{event} ({d}/events/{category}/{event} missing)"


class TracefsMount:
    """Mounts tracefs at /sys/kernel/tracing when nothing is mounted, for as long as someone needs it."""

    def __init__(self) -> None:
        self.users = 0
        self.mounted_by_us = False

    def acquire(self) -> str | None:
        with _lock:
            self.users += 1
            if tracefs_dir() is not None:
                return None
            libc = ctypes.CDLL(None, use_errno=True)
            target = str(TRACEFS_MOUNTS[0]).encode()
            if libc.mount(b"tracefs", target, b"tracefs", 0, None) != 0:
                self.users -= 1
                e = ctypes.get_errno()
                raise UnavailableError(f"tracefs is not mounted and mounting it failed: {os.strerror(e)}")
            self.mounted_by_us = True
            return f"mounted tracefs at {TRACEFS_MOUNTS[0]} (unmounted at stop)"

    def release(self) -> None:
        with _lock:
            self.users = max(0, self.users - 1)
            if self.users == 0 and self.mounted_by_us:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.umount2(str(TRACEFS_MOUNTS[0]).encode(), 0) == 0:
                    self.mounted_by_us = False


# ---------------------------------------------------------------------------------- BPF stats
BPF_SYSCALL_NR = 321  # x86-64
BPF_ENABLE_STATS = 32  # enum bpf_cmd, Linux 5.8
BPF_STATS_RUN_TIME = 0


class BpfStats:
    """Kernel run-time accounting of BPF programs, on while any sampler holds it.

    Prefers the BPF_ENABLE_STATS command (5.8): stats stay on while its fd is open, no knob is
    written and nothing is left behind if tierctl dies. Else writes 1 to
    /proc/sys/kernel/bpf_stats_enabled, recording the old value and restoring it on release.
    """

    def __init__(self, sysctl: Path = BPF_STATS_SYSCTL) -> None:
        self.sysctl = sysctl
        self.users = 0
        self.fd: int | None = None
        self.old_sysctl: str | None = None
        self.how = ""

    def acquire(self) -> str:
        with _lock:
            self.users += 1
            if self.users > 1:
                return self.how
            libc = ctypes.CDLL(None, use_errno=True)
            attr = (ctypes.c_uint32 * 2)(BPF_STATS_RUN_TIME, 0)
            fd = libc.syscall(BPF_SYSCALL_NR, BPF_ENABLE_STATS, ctypes.byref(attr), ctypes.sizeof(attr))
            if fd >= 0:
                self.fd = fd
                self.how = "BPF run time from BPF_ENABLE_STATS"
                return self.how
            errno_ = ctypes.get_errno()
            try:
                old = self.sysctl.read_text().strip()
                if old != "1":
                    self.sysctl.write_text("1\n")
                    self.old_sysctl = old
                self.how = f"BPF run time from {self.sysctl} (was {old}, restored at stop)"
            except OSError as e:
                self.how = f"no BPF run time: BPF_ENABLE_STATS: {os.strerror(errno_)}; {self.sysctl}: {e}"
            return self.how

    def release(self) -> None:
        with _lock:
            self.users = max(0, self.users - 1)
            if self.users:
                return
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None
            if self.old_sysctl is not None:
                with contextlib.suppress(OSError):
                    self.sysctl.write_text(self.old_sysctl + "\n")
                self.old_sysctl = None


class BpfHost:
    """What the BPF samplers of one process share: tracefs (mounted while any of them needs it)
    and kernel BPF run-time stats (on while any of them runs). The service makes one and hands it
    to each sampler; a sampler made without one gets its own."""

    def __init__(self) -> None:
        self.tracefs = TracefsMount()
        self.stats = BpfStats()


def prog_run_ns(fd: int, *, proc: Path = PROC) -> int | None:
    """run_time_ns of a loaded program (kernel BPF stats; 0 while they are off)."""
    try:
        text = (proc / "self" / "fdinfo" / str(fd)).read_text()
    except OSError:
        return None
    m = re.search(r"^run_time_ns:\s*(\d+)", text, flags=re.M)
    return int(m.group(1)) if m else None


# ------------------------------------------------------------------------------------- cgroups
def cgroup2_root(mountinfo: Path = PROC / "self" / "mountinfo") -> Path | None:
    """Mount point of the cgroup v2 hierarchy (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts)."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return None
    found = []
    for line in lines:
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] == "cgroup2":
            found.append(Path(left.split()[4].replace("\\040", " ")))
    found.sort(key=lambda p: (p != CGROUP2_DEFAULT, len(str(p))))
    return found[0] if found else None


def effective_caps(status: Path = PROC / "self" / "status") -> int | None:
    """This process's effective capability mask (``CapEff``), None when it cannot be read."""
    try:
        return status_caps(status.read_text(), "CapEff")
    except OSError:
        return None
